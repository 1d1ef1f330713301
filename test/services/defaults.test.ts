/**
 * Secure defaults (GP-TM-08): the shipped profile keeps the console and the debug port off,
 * the profile loader refuses to enable them without an explicit override, an applied
 * override is written to the audit log at every start-up, and the console refuses to run
 * when the profile keeps it off. Operator keys in the profile are validated.
 */

import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ProfileError, parseProfile } from "../../boot/profile"
import { ServiceError, openAdminConsole, startSecurityServices } from "../../src/admin/service"
import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { CONSOLE_ON, giveIdentity, smallSectorBoard } from "./support"

afterAll(() => cleanupTestBoards())

const shipped = JSON.parse(readFileSync(join(__dirname, "../../devs.config.json"), "utf8"))

function withSections(sections: Record<string, unknown>): unknown {
    return { ...testProfileJson(), ...sections }
}

describe("GP-TM-08: secure defaults", () => {
    it("GP-TM-08: the shipped profile keeps the console and debug port off, no overrides", () => {
        const profile = parseProfile(shipped)

        expect(profile.services).toEqual({ console: false, debugPort: false })
        expect(profile.security.overrides).toEqual([])
    })

    it("GP-TM-08: enabling the console or debug port without an override is refused", () => {
        const consoleOn = withSections({ services: { console: true, debugPort: false } })
        const debugOn = withSections({ services: { console: false, debugPort: true } })

        expect(() => parseProfile(consoleOn)).toThrow(ProfileError)
        expect(() => parseProfile(consoleOn)).toThrow(/services.console/)
        expect(() => parseProfile(debugOn)).toThrow(/services.debugPort/)
    })

    it("GP-TM-08: an unknown override is refused rather than ignored", () => {
        const bad = withSections({ security: { overrides: ["everything"] } })

        expect(() => parseProfile(bad)).toThrow(/security.overrides\[0\]/)
    })

    it("GP-TM-08: an applied override is audited at every start-up", async () => {
        let board = await smallSectorBoard(4, { profile: CONSOLE_ON })
        await giveIdentity(board)

        await startSecurityServices(board, board.profile)
        board = await board.powerCycle()
        const services = await startSecurityServices(board, board.profile)
        const overrides: string[] = []
        await services.audit.forEach(0, async (r) => {
            if (r.event === "security-override") overrides.push(`${r.actor} ${r.detail}`)
        })

        expect(overrides).toEqual([
            "profile override=console enabled=true",
            "profile override=console enabled=true",
        ])
    })

    it("GP-TM-08: the console does not run when the profile keeps it off", async () => {
        const board = await smallSectorBoard(4)
        const services = await startSecurityServices(board, board.profile)

        const open = openAdminConsole(board, board.profile, services)

        await expect(open).rejects.toThrow(ServiceError)
    })

    it("accepts operator keys only as uncompressed P-256 points in hex", () => {
        const key = "04" + "ab".repeat(64)
        const good = withSections({ security: { overrides: [], operatorKeys: [key] } })
        const short = withSections({ security: { overrides: [], operatorKeys: ["04abcd"] } })
        const upper = withSections({
            security: { overrides: [], operatorKeys: [key.toUpperCase()] },
        })

        expect(parseProfile(good).security.operatorKeys).toEqual([key])
        expect(() => parseProfile(short)).toThrow(/security.operatorKeys\[0\]/)
        expect(() => parseProfile(upper)).toThrow(/security.operatorKeys\[0\]/)
    })
})
