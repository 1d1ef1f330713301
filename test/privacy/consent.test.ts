/**
 * Consent (src/privacy/manager.ts, consent.ts; GP-TM-10, GP-TM-11, GP-TM-20): consent-based
 * categories are off until the owner grants them, a withdrawal stops collection and
 * publishing at once and removes the data, and a grant counts only for the privacy notice
 * it was given to.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PARTITION_PREFS } from "../../src/prefs"
import { PrivacyManager } from "../../src/privacy/manager"
import { KEY_CONSENT } from "../../src/privacy/state"
import { cleanupTestBoards } from "../../sim/testing"
import { T0, freshRig, openRig, privacyBoard } from "./helpers"

afterAll(() => cleanupTestBoards())

/** A telemetry tick as the app runs it: collect a reading, then send what may leave. */
async function telemetryTick(
    rig: Awaited<ReturnType<typeof freshRig>>,
    reading: Record<string, unknown>,
    sent: string[]
): Promise<void> {
    await rig.manager.collect("telemetry", reading)
    await rig.manager.publishHeld("telemetry", async (payload) => {
        sent.push(payload.toString())
        return true
    })
}

describe("consent", () => {
    it("GP-TM-10: refuses telemetry and location until the owner grants them", async () => {
        const rig = await freshRig()
        const sent: string[] = []

        await telemetryTick(rig, { temperature: 21 }, sent)
        const location = await rig.manager.collect("location", { lat: 48.85, lon: 2.35 })

        expect(rig.manager.mayCollect("telemetry")).toBe(false)
        expect(rig.manager.mayPublish("telemetry")).toBe(false)
        expect(location).toBe(false)
        expect(sent).toEqual([])
        expect(rig.manager.held("telemetry")).toEqual([])
        expect(rig.prefs.get("pd.location")).toBeNull()
    })

    it("GP-TM-10: collects once granted; the grant keeps time, notice and actor", async () => {
        const rig = await freshRig()
        const sent: string[] = []

        await rig.manager.setConsent("telemetry", true, "console:owner")
        await telemetryTick(rig, { temperature: 21.04 }, sent)

        expect(sent.map((s) => JSON.parse(s).d)).toEqual([{ temperature: 21 }])
        expect(rig.manager.consents()).toEqual([
            { category: "telemetry", granted: true, at: T0, notice: "1", by: "console:owner" },
        ])
        expect(rig.audit).toContainEqual({
            event: "privacy-consent",
            actor: "console:owner",
            outcome: "success",
            detail: "category=telemetry granted=true notice=1",
        })
    })

    it("GP-TM-10: a withdrawal stops collection and publishing before it is written", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("telemetry", true, "console:owner")
        await rig.manager.collect("telemetry", { temperature: 20 })

        const writing = rig.manager.setConsent("telemetry", false, "console:owner")
        const collectedMeanwhile = await rig.manager.collect("telemetry", { temperature: 22 })
        const publishable = rig.manager.mayPublish("telemetry")
        const heldMeanwhile = rig.manager.held("telemetry")
        await writing

        expect(collectedMeanwhile).toBe(false)
        expect(publishable).toBe(false)
        expect(heldMeanwhile).toEqual([])
        expect(rig.manager.mayCollect("telemetry")).toBe(false)
    })

    it("GP-TM-10: a withdrawal during a publish stops the next send", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("telemetry", true, "console:owner")
        for (let i = 0; i < 5; i++) await rig.manager.collect("telemetry", { temperature: 20 + i })
        const sent: string[] = []

        const count = await rig.manager.publishHeld("telemetry", async (payload) => {
            sent.push(payload.toString())
            if (sent.length === 2) await rig.manager.setConsent("telemetry", false, "operator:x")
            return true
        })

        expect(count).toBe(2)
        expect(sent).toHaveLength(2)
        expect(rig.manager.held("telemetry")).toEqual([])
    })

    it("GP-TM-10: withdrawing location removes the position in the same write", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("location", true, "console:owner")
        await rig.manager.collect("location", { lat: 48.8566, lon: 2.3522 })
        const before = rig.board.flash.opCount

        await rig.manager.setConsent("location", false, "console:owner")

        expect(rig.prefs.get("pd.location")).toBeNull()
        expect(rig.manager.held("location")).toEqual([])
        expect(rig.board.flash.opCount - before).toBeLessThanOrEqual(3)
        const raw = rig.board.flash.peek(PARTITION_PREFS, 0, 8192)
        expect(raw.includes(Buffer.from("48.86"))).toBe(false)
    })

    it("GP-TM-10: consent survives a power cycle; without wall time it has none", async () => {
        let board = await privacyBoard({ wallTime: null })
        let rig = await openRig(board)
        await rig.manager.setConsent("telemetry", true, "operator:ab12cd34")

        board = await board.powerCycle()
        rig = await openRig(board)

        expect(rig.manager.mayCollect("telemetry")).toBe(true)
        expect(rig.manager.consents()[0]).toMatchObject({ at: null, by: "operator:ab12cd34" })
    })

    it("GP-TM-10: an odd actor name still gives a record that reads back", async () => {
        let board = await privacyBoard()
        let rig = await openRig(board)
        await rig.manager.setConsent("telemetry", true, "app user Zoë")

        board = await board.powerCycle()
        rig = await openRig(board)

        expect(rig.manager.mayCollect("telemetry")).toBe(true)
        expect(rig.manager.consents()[0].by).toBe("app?user?Zo?")
    })

    it("GP-TM-10: a damaged consent record reads as not granted", async () => {
        let board = await privacyBoard()
        let rig = await openRig(board)
        await rig.manager.setConsent("telemetry", true, "console:owner")
        await rig.prefs.set(KEY_CONSENT, '[{"c":"telemetry","g":"yes","t":null,"n":"1","by":"x"}]')

        board = await board.powerCycle()
        rig = await openRig(board)

        expect(rig.manager.mayCollect("telemetry")).toBe(false)
    })

    it("GP-TM-10: contract categories need no consent and cannot take one", async () => {
        const rig = await freshRig()

        const stored = await rig.manager.collect("preferences", { unit: "c", brightness: 40 })

        expect(stored).toBe(true)
        expect(rig.manager.valueOf("preferences", "brightness")).toBe(40)
        await expect(rig.manager.setConsent("preferences", true, "x")).rejects.toMatchObject({
            check: "consent",
        })
        await expect(rig.manager.setConsent("security-log", false, "x")).rejects.toMatchObject({
            check: "consent",
        })
    })

    it("GP-TM-11: a grant to an older privacy notice does not count after an update", async () => {
        let board = await privacyBoard()
        let rig = await openRig(board, { notice: "1" })
        await rig.manager.setConsent("location", true, "console:owner")
        await rig.manager.collect("location", { lat: 52.52, lon: 13.405 })
        await rig.manager.collect("preferences", { brightness: 70 })

        board = await board.powerCycle()
        rig = await openRig(board, { notice: "2" })

        expect(rig.manager.mayCollect("location")).toBe(false)
        expect(rig.manager.pendingConsents()).toEqual(["location"])
        expect(rig.manager.held("location")).toEqual([])
        expect(rig.prefs.get("pd.location")).toBeNull()
        expect(rig.manager.valueOf("preferences", "brightness")).toBe(70)
    })

    it("GP-TM-10: withdraw, grant, withdraw in flight never reopen in between", async () => {
        const rig = await freshRig()
        const seen: boolean[] = []
        const m: PrivacyManager = await PrivacyManager.open({
            prefs: rig.prefs,
            clock: rig.board.clock,
            audit: async () => void seen.push(m.mayCollect("telemetry")),
        })
        await m.setConsent("telemetry", true, "console:owner")
        seen.length = 0

        const all = Promise.all([
            m.setConsent("telemetry", false, "a"),
            m.setConsent("telemetry", true, "b"),
            m.setConsent("telemetry", false, "c"),
        ])
        await rig.board.advance(100)
        await all

        expect(seen).toEqual([false, false, false])
        expect(m.consents()[0]).toMatchObject({ granted: false, by: "c" })
    })

    it("GP-TM-14: restrict on, off, on in flight together never open in between", async () => {
        const rig = await freshRig()
        const seen: boolean[] = []
        const m: PrivacyManager = await PrivacyManager.open({
            prefs: rig.prefs,
            clock: rig.board.clock,
            audit: async () => void seen.push(m.mayCollect("preferences")),
        })

        const all = Promise.all([
            m.setRestricted(true, "a"),
            m.setRestricted(false, "b"),
            m.setRestricted(true, "c"),
        ])
        await rig.board.advance(100)
        await all

        expect(seen).toEqual([false, false, false])
        expect(m.isRestricted()).toBe(true)
    })

    it("GP-TM-10: an unknown category is never collectable", async () => {
        const rig = await freshRig()

        expect(rig.manager.mayCollect("microphone")).toBe(false)
        expect(await rig.manager.collect("microphone", { level: 3 })).toBe(false)
        expect(rig.manager.mayCollect("security-log")).toBe(false)
    })
})
