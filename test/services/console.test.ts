/**
 * The local admin console (GP-TM-22, GP-TM-24, GP-TM-25, GP-TM-26, GP-TM-53): first login
 * with the setup code only, a forced change to a policy-compliant owner password, backoff
 * on the virtual clock, a lockout that survives power cycles and cuts, and recovery that
 * needs the button held at boot and keeps the device identity.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { REPLIES } from "../../src/admin/console"
import { readIdentity } from "../../src/identity"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards } from "../../sim/testing"
import {
    OWNER_PASSWORD,
    SETUP_CODE,
    Session,
    consoleBoard,
    login,
    openConsole,
    verify,
} from "./support"

afterAll(() => cleanupTestBoards())

async function auditTrail(session: Session): Promise<string[]> {
    const out: string[] = []
    await session.services.audit.forEach(0, async (r) => {
        out.push(`${r.event} ${r.outcome} ${r.detail}`)
    })
    return out
}

/** Provisioned board whose owner finished the first setup. */
async function ownedBoard(): Promise<{ board: SimBoard; pub: Buffer; session: Session }> {
    const { board, pub } = await consoleBoard()
    const session = await openConsole(board)
    await login(session, "owner", SETUP_CODE)
    await session.say(OWNER_PASSWORD, OWNER_PASSWORD, "logout")
    return { board, pub, session }
}

describe("first setup", () => {
    it(
        "GP-TM-22: the first login takes only the setup code, then forces a new password",
        async () => {
            const { board } = await consoleBoard()
            const session = await openConsole(board)

            const withDefault = await login(session, "admin", "admin")
            await board.advance(5000)
            const withSetup = await login(session, "owner", SETUP_CODE.toLowerCase())
            const command = await session.say("whoami")

            expect(withDefault).toEqual([REPLIES.loginFailed])
            expect(withSetup[0]).toMatch(/^setup code accepted/)
            expect(withSetup[1]).toBe("new password:")
            expect(command).toEqual(["refused: too-short", "new password:"])
        }
    )

    it(
        "GP-TM-22: refuses blank, default, common and device-derived passwords with the reason",
        async () => {
            const { board } = await consoleBoard()
            const session = await openConsole(board)
            await login(session, "owner", SETUP_CODE)

            const blank = await session.say("")
            const admin = await session.say("admin")
            const common = await session.say("password1234")
            const derived = await session.say("K7QX9MNP2RTW4HJD!")
            const fromId = await session.say("my 0123456789ab box")
            const accepted = await session.say(OWNER_PASSWORD, OWNER_PASSWORD)

            expect(blank[0]).toBe("refused: blank")
            expect(admin[0]).toBe("refused: too-short")
            expect(common[0]).toBe("refused: common")
            expect(derived[0]).toBe("refused: derived-from-device")
            expect(fromId[0]).toBe("refused: derived-from-device")
            expect(accepted).toContain("owner password set")
            const trail = await auditTrail(session)
            expect(trail).toContain("password-change refused reason=common")
            expect(trail).toContain("password-change success first-setup")
        }
    )

    it("GP-TM-22: the setup code works once; afterwards only the owner password does", async () => {
        const { board, session } = await ownedBoard()

        await board.advance(1000)
        const again = await login(session, "owner", SETUP_CODE)
        await board.advance(2000)
        const owner = await login(session, "owner", OWNER_PASSWORD)

        expect(again).toEqual([REPLIES.loginFailed])
        expect(owner[0]).toBe("welcome, owner")
    })

    it("GP-TM-24: stores only a salted hash of the owner password", async () => {
        const { board } = await ownedBoard()

        const settings = board.flash.peek("secure-settings", 0, 2048)

        expect(settings.includes(Buffer.from(OWNER_PASSWORD))).toBe(false)
        expect(settings.includes(Buffer.from("amber"))).toBe(false)
    })
})

describe("brute force", () => {
    it("GP-TM-25: backs off exponentially on the virtual clock", async () => {
        const { board } = await ownedBoard()
        let session = await openConsole(board)

        const first = await login(session, "owner", "wrong guess one")
        const tooSoon = await login(session, "owner", "wrong guess two")
        await board.advance(999)
        const stillSoon = await login(session, "owner", "wrong guess two")
        await board.advance(1)
        const second = await login(session, "owner", "wrong guess two")
        await board.advance(1999)
        const third = await login(session, "owner", "wrong guess three")
        await board.advance(1)
        const fourth = await login(session, "owner", "wrong guess three")

        expect(first).toEqual([REPLIES.loginFailed])
        expect(tooSoon).toEqual(["login refused: try again in 1 s"])
        expect(stillSoon).toEqual(["login refused: try again in 1 s"])
        expect(second).toEqual([REPLIES.loginFailed])
        expect(third).toEqual(["login refused: try again in 1 s"])
        expect(fourth).toEqual([REPLIES.loginFailed])
    })

    it(
        "GP-TM-25: locks the console after 10 failed logins, and a power cycle keeps it locked",
        async () => {
            let { board } = await ownedBoard()
            let session = await openConsole(board)
            const replies: string[][] = []

            for (let i = 0; i < 10; i++) {
                replies.push(await login(session, "owner", "guess number " + i))
                await board.advance(600000)
            }
            board = await board.powerCycle()
            session = await openConsole(board)
            await board.advance(600000)
            const afterReboot = await session.say("login")
            const rightPassword = await login(session, "owner", OWNER_PASSWORD)

            expect(replies[9]).toEqual([REPLIES.loginFailed, REPLIES.locked])
            expect(afterReboot).toEqual([REPLIES.locked])
            expect(rightPassword).not.toContain("welcome, owner")
            expect(await auditTrail(session)).toContain("account info console locked")
        }
    )

    it(
        "GP-TM-25: a power cycle restarts the backoff from boot instead of clearing it",
        async () => {
            let { board } = await ownedBoard()
            let session = await openConsole(board)
            for (let i = 0; i < 4; i++) {
                await login(session, "owner", "guess number " + i)
                await board.advance(600000)
            }
            await login(session, "owner", "guess number 4")

            board = await board.powerCycle()
            session = await openConsole(board)
            const atBoot = await login(session, "owner", OWNER_PASSWORD)
            await board.advance(16000)
            const afterWait = await login(session, "owner", OWNER_PASSWORD)

            expect(atBoot).toEqual(["login refused: try again in 16 s"])
            expect(afterWait[0]).toBe("welcome, owner")
        }
    )

    it("GP-TM-25: cutting power during a login check cannot erase the failed attempt", async () => {
        let { board } = await ownedBoard()
        let session = await openConsole(board)
        // The attempt is counted (erase + program), then checked; cut the next write.
        board.flash.armPowerCut(2, "none")

        const cut = await login(session, "owner", OWNER_PASSWORD).catch((e) => e)
        const where = board.flash.lastCut()
        board = await board.powerCycle()
        session = await openConsole(board)
        const afterReboot = await login(session, "owner", OWNER_PASSWORD)

        expect(cut).toBeInstanceOf(PowerLoss)
        expect(where).toMatchObject({ op: "erase", partition: "secure-settings" })
        expect(afterReboot).toEqual(["login refused: try again in 1 s"])
    })
})

describe("answers", () => {
    it("GP-TM-53: wrong user, wrong password and used setup code get the same answer", async () => {
        const { board, session } = await ownedBoard()
        const answers: string[][] = []

        for (const [user, secret] of [
            ["owner", "not the password"],
            ["root", OWNER_PASSWORD],
            ["admin", "admin"],
            ["owner", SETUP_CODE],
        ]) {
            await board.advance(600000)
            answers.push(await login(session, user, secret))
        }

        for (const a of answers) expect(a).toEqual([REPLIES.loginFailed])
    })

    it("GP-TM-53: an internal failure answers without stack, path or key material", async () => {
        const { board, session } = await ownedBoard()
        await board.advance(5000)
        await login(session, "owner", OWNER_PASSWORD)
        session.services.audit.append = async () => {
            throw new Error("EIO /sim/dev/flash.bin at 0x0001f000 key=3fa94c0e12ab77aa")
        }

        const replies = await session.say("logout")

        expect(replies).toEqual([REPLIES.internal])
        for (const r of replies) expect(r).not.toMatch(/\/|\\|at |Error|flash|0x|[0-9a-f]{16}/)
    })
})

describe("other services' commands", () => {
    it("GP-TM-25: a command another service adds runs only for the logged-in owner", async () => {
        const { board } = await ownedBoard()
        const seen: string[] = []
        const session = await openConsole(board, undefined, [
            {
                word: "privacy",
                handle: async (line) => {
                    seen.push(line)
                    return ["privacy ok"]
                },
            },
        ])

        const before = await session.say("privacy info")
        await board.advance(5000)
        await login(session, "owner", OWNER_PASSWORD)
        const after = await session.say("privacy info")

        expect(before).toEqual([REPLIES.needLogin])
        expect(after).toEqual(["privacy ok"])
        expect(seen).toEqual(["privacy info"])
        expect(session.admin.ownerLoggedIn()).toBe(true)
    })
})

describe("recovery", () => {
    it("GP-TM-26: without the button held there is no recovery command", async () => {
        const { board } = await ownedBoard()
        const session = await openConsole(board)

        const replies = await session.say("factory-reset")

        expect(replies).toEqual([REPLIES.needLogin])
    })

    it(
        "GP-TM-26: the button held at boot allows a factory reset that keeps the identity",
        async () => {
            let { board, pub } = await ownedBoard()
            let session = await openConsole(board)
            for (let i = 0; i < 10; i++) {
                await login(session, "owner", "guess number " + i)
                await board.advance(600000)
            }
            board.button.press()
            board = await board.powerCycle()
            session = await openConsole(board)

            const greeting = session.admin.greeting()
            const replies = await session.say("factory-reset", "dev-0123456789ab")
            board.button.release()
            board = await board.powerCycle()
            session = await openConsole(board)
            const setupAgain = await login(session, "owner", SETUP_CODE)

            expect(greeting[0]).toMatch(/^bulwark recovery/)
            expect(replies).toContain("factory reset done: log in with the setup code")
            expect(setupAgain[0]).toMatch(/^setup code accepted/)
            expect((await board.secureElement.publicKey(SE_SLOT_IDENTITY)).equals(pub)).toBe(true)
            const identity = await readIdentity(
                board.crypto,
                board.secureElement,
                board.flash.partition("identity")
            )
            expect(identity?.deviceId).toBe("dev-0123456789ab")
            expect(board.flash.peek("prefs", 0, 16).every((b) => b === 0xff)).toBe(true)
            const trail = await auditTrail(session)
            expect(trail).toContain("recovery info button held at boot")
            expect(trail).toContain("factory-reset success phase=done kept=identity,audit")
        }
    )

    it("GP-TM-55: the owner exports the log from the console, audited as log-export", async () => {
        const { board, pub } = await ownedBoard()
        const session = await openConsole(board)
        await board.advance(5000)
        await login(session, "owner", OWNER_PASSWORD)

        const lines = await session.say("audit-export")
        const hex = lines.filter((l) => l.startsWith("export ")).map((l) => l.slice(7))
        const report = await verify(pub, Buffer.from(hex.join(""), "hex"))

        expect(lines[0]).toBe("export-begin")
        expect(lines[lines.length - 1]).toBe("export-end")
        expect(report.genuine).toBe(true)
        expect(await auditTrail(session)).toContain("log-export success from=0")
    })
})
