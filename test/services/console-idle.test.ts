/**
 * The console's idle timeout (docs/admin.md, "Idle timeout"; GP-TM-25): an owner session
 * with no line typed for CONSOLE_IDLE_MS on the board clock is logged out and audited,
 * and the line typed after that is not run as the owner.
 */

import { afterAll, describe, expect, it } from "vitest"
import { CONSOLE_IDLE_MS, REPLIES } from "../../src/admin/console"
import { cleanupTestBoards } from "../../sim/testing"
import { OWNER_PASSWORD, SETUP_CODE, Session, consoleBoard, login, openConsole } from "./support"

afterAll(() => cleanupTestBoards())

async function trail(session: Session): Promise<string[]> {
    const out: string[] = []
    await session.services.audit.forEach(0, async (r) => {
        out.push(`${r.event} ${r.outcome} ${r.detail}`)
    })
    return out
}

async function ownerSession() {
    const { board } = await consoleBoard()
    const session = await openConsole(board)
    await login(session, "owner", SETUP_CODE)
    await session.say(OWNER_PASSWORD, OWNER_PASSWORD)
    return { board, session }
}

describe("console idle timeout", () => {
    it("is five minutes, whatever the profile", () => {
        expect(CONSOLE_IDLE_MS).toBe(5 * 60 * 1000)
    })

    it("GP-TM-25: an owner idle for 5 minutes is logged out and the logout is audited", async () => {
        const { board, session } = await ownerSession()
        expect(session.admin.ownerLoggedIn()).toBe(true)
        await board.advance(CONSOLE_IDLE_MS)
        // Other services see the login gone at once, before any line or timer.
        expect(session.admin.ownerLoggedIn()).toBe(false)

        // An attacker at the unattended console: the command is not run.
        const replies = await session.say("audit-export")
        expect(replies).toEqual([REPLIES.idleLogout])
        expect(await session.say("whoami")).toEqual([REPLIES.needLogin])
        const events = await trail(session)
        expect(events).toContain("logout info reason=idle")
        expect(events.some((e) => e.startsWith("log-export"))).toBe(false)
    })

    it("GP-TM-25: activity keeps the session; the limit counts from the last line", async () => {
        const { board, session } = await ownerSession()
        for (let i = 0; i < 4; i++) {
            await board.advance(CONSOLE_IDLE_MS - 1000)
            expect(await session.say("whoami")).toEqual(["owner"])
        }
        expect(session.admin.ownerLoggedIn()).toBe(true)
        expect((await trail(session)).some((e) => e.includes("reason=idle"))).toBe(false)
    })

    it("GP-TM-25: a host timer logs the idle owner out without any input", async () => {
        const { board, session } = await ownerSession()
        expect(await session.admin.expireIdle()).toBe(false)
        await board.advance(CONSOLE_IDLE_MS + 1)
        expect(await session.admin.expireIdle()).toBe(true)
        expect(await session.admin.expireIdle()).toBe(false)
        const idle = (await trail(session)).filter((e) => e.includes("reason=idle"))
        expect(idle).toHaveLength(1)
        // The next line starts from the login prompt, with no second logout record.
        expect(await session.say("whoami")).toEqual([REPLIES.needLogin])
    })

    it("GP-TM-25: an idle password change is abandoned and the owner logged out", async () => {
        const { board, session } = await ownerSession()
        expect(await session.say("passwd")).toEqual(["current password:"])
        await board.advance(CONSOLE_IDLE_MS)
        expect(await session.say(OWNER_PASSWORD)).toEqual([REPLIES.idleLogout])
        expect(await trail(session)).toContain("logout info reason=idle")
    })

    it("a half-typed login expires without a logout record", async () => {
        const { board, session } = await ownerSession()
        await session.say("logout", "login", "owner")
        await board.advance(CONSOLE_IDLE_MS)
        // The password typed late is dropped, not checked.
        expect(await session.say(OWNER_PASSWORD)).toEqual([REPLIES.idleLogout])
        expect(session.admin.ownerLoggedIn()).toBe(false)
        expect((await trail(session)).some((e) => e.includes("reason=idle"))).toBe(false)
    })
})
