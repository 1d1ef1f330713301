/**
 * The data inventory, minimisation and retention (src/privacy/inventory.ts, held.ts;
 * GP-TM-11, GP-TM-12, GP-TM-13): every category is documented the way GDPR asks, only
 * declared fields are ever stored or sent, telemetry names nobody, and held data older than
 * its retention is purged on the board clock.
 */

import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { DEFAULT_INVENTORY, DataCategory, inventoryProblems } from "../../src/privacy/inventory"
import { PrivacyManager } from "../../src/privacy/manager"
import { SimBoard } from "../../sim/board"
import { VirtualClock } from "../../sim/clock"
import { cleanupTestBoards } from "../../sim/testing"
import { handleConsoleLine, replyPayload } from "../../src/privacy/rights"
import { DEVICE_ID, T0, freshRig, openRig, privacyBoard, rightsFor } from "./helpers"

afterAll(() => cleanupTestBoards())

const HOUR_MS = 3600 * 1000
const DAY = 24 * 3600

function setWall(board: SimBoard, seconds: number): void {
    if (!(board.clock instanceof VirtualClock)) throw new Error("test boards run on virtual time")
    board.clock.setWallTime(seconds)
}

function variant(id: string, change: Partial<DataCategory>): DataCategory[] {
    return DEFAULT_INVENTORY.map((c) => (c.id === id ? { ...c, ...change } : c))
}

describe("inventory", () => {
    it("GP-TM-13: each category names purpose, basis, retention, recipient, articles", () => {
        expect(inventoryProblems(DEFAULT_INVENTORY)).toEqual([])
        for (const c of DEFAULT_INVENTORY) {
            expect(c.purpose.length, c.id).toBeGreaterThan(10)
            expect(["consent", "contract", "legal-obligation"], c.id).toContain(c.basis)
            expect(c.retention.length, c.id).toBeGreaterThan(5)
            expect(c.articles.length, c.id).toBeGreaterThan(0)
        }
    })

    it("GP-TM-13: docs/privacy.md documents every category with its basis", () => {
        const doc = readFileSync(join(__dirname, "../../docs/privacy.md"), "utf8")

        for (const c of DEFAULT_INVENTORY) {
            const row = doc.split("\n").find((line) => line.startsWith("| `" + c.id + "`"))
            expect(row, c.id).toBeDefined()
            expect(row, c.id).toContain(c.basis)
        }
    })

    it("GP-TM-13: finds a category without purpose, an unerasable consent one, a duplicate", () => {
        const broken = [
            ...variant("telemetry", { purpose: "" }),
            { ...DEFAULT_INVENTORY[1], erasable: false, kept: "because" },
            DEFAULT_INVENTORY[2],
        ]

        const problems = inventoryProblems(broken)

        expect(problems).toContain("telemetry: purpose")
        expect(problems).toContain("location: erasable")
        expect(problems).toContain("usage-history: duplicate")
    })

    it("GP-TM-11: the manager refuses to start on an incomplete inventory", async () => {
        const board = await privacyBoard()

        await expect(
            openRig(board, { inventory: variant("telemetry", { retention: "" }) })
        ).rejects.toMatchObject({ check: "inventory" })
    })

    it("GP-TM-11: data the inventory no longer declares is removed at start", async () => {
        let board = await privacyBoard()
        let rig = await openRig(board)
        await rig.manager.collect("owner-profile", { name: "Ada", contact: "ada@example.org" })
        await rig.manager.collect("preferences", { unit: "c", brightness: 30 })

        board = await board.powerCycle()
        const shrunk = DEFAULT_INVENTORY.filter((c) => c.id !== "owner-profile").map((c) =>
            c.id === "preferences" ? { ...c, fields: c.fields.filter((f) => f.name !== "unit") } : c
        )
        rig = await openRig(board, { inventory: shrunk })

        expect(rig.prefs.get("pd.owner-profile")).toBeNull()
        expect(rig.manager.held("preferences").map((i) => i.fields)).toEqual([{ brightness: 30 }])
        expect(rig.audit.map((r) => r.event)).toEqual(["privacy-retention"])
    })
})

describe("minimisation", () => {
    it("GP-TM-11: keeps only declared fields; nothing else is stored or sent", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("telemetry", true, "console:owner")
        const sent: Buffer[] = []

        await rig.manager.collect("telemetry", {
            temperature: 21.5,
            humidity: 40.4,
            owner: "Ada Lovelace",
            email: "ada@example.org",
            ip: "192.0.2.1",
        })
        await rig.manager.publishHeld("telemetry", async (p) => {
            sent.push(p)
            return true
        })

        expect(sent).toHaveLength(1)
        expect(JSON.parse(sent[0].toString())).toEqual({
            v: 1,
            c: "telemetry",
            t: String(T0),
            d: { temperature: 21.5, humidity: 40 },
        })
    })

    it("GP-TM-12: telemetry carries no owner data and not even the device id", async () => {
        const rig = await freshRig()
        await rig.manager.collect("owner-profile", { name: "Grace Hopper", contact: "g@navy.mil" })
        await rig.manager.setConsent("telemetry", true, "console:owner")
        await rig.manager.setConsent("location", true, "console:owner")
        await rig.manager.collect("location", { lat: 38.8895, lon: -77.0353 })
        for (let i = 0; i < 3; i++) await rig.manager.collect("telemetry", { power: 100 * i })
        const sent: string[] = []
        const send = async (p: Buffer) => {
            sent.push(p.toString())
            return true
        }

        await rig.manager.publishHeld("telemetry", send)
        await rig.manager.publishHeld("location", send)
        await rig.manager.publishHeld("owner-profile", send)

        expect(sent).toHaveLength(4)
        for (const text of sent) {
            expect(Object.keys(JSON.parse(text)).sort()).toEqual(["c", "d", "t", "v"])
            for (const secret of ["Grace", "navy", DEVICE_ID]) expect(text).not.toContain(secret)
        }
    })

    it("GP-TM-12: stores location coarsened to two decimals (about 1 km)", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("location", true, "console:owner")

        await rig.manager.collect("location", { lat: 48.858370, lon: 2.294481 })

        expect(rig.manager.held("location")[0].fields).toEqual({ lat: 48.86, lon: 2.29 })
        expect(rig.prefs.get("pd.location")).not.toContain("48.858")
    })

    it("GP-TM-12: drops values outside their field's bounds and items left empty", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("telemetry", true, "console:owner")

        const ok = await rig.manager.collect("telemetry", { temperature: 400, humidity: 50 })
        const empty = await rig.manager.collect("telemetry", { temperature: NaN, power: -5 })

        expect(ok).toBe(true)
        expect(empty).toBe(false)
        expect(rig.manager.held("telemetry").map((i) => i.fields)).toEqual([{ humidity: 50 }])
    })

    it("GP-TM-12: holds at most maxItems per category, dropping the oldest", async () => {
        const rig = await freshRig()
        await rig.manager.setConsent("telemetry", true, "console:owner")

        for (let i = 0; i < 105; i++) await rig.manager.collect("telemetry", { power: i })

        const held = rig.manager.held("telemetry")
        expect(held).toHaveLength(100)
        expect(held[0].fields).toEqual({ power: 5 })
    })
})

describe("retention", () => {
    it("GP-TM-12: purges telemetry held longer than 24 h on the monotonic clock", async () => {
        const rig = await freshRig({ wallTime: null })
        await rig.manager.setConsent("telemetry", true, "console:owner")
        await rig.manager.collect("telemetry", { temperature: 19 })
        await rig.board.advance(23 * HOUR_MS)
        await rig.manager.collect("telemetry", { temperature: 20 })

        const early = await rig.manager.purgeExpired()
        await rig.board.advance(2 * HOUR_MS)
        const late = await rig.manager.purgeExpired()

        expect(early).toBe(0)
        expect(late).toBe(1)
        expect(rig.manager.held("telemetry").map((i) => i.fields)).toEqual([{ temperature: 20 }])
        expect(rig.audit.at(-1)).toEqual({
            event: "privacy-retention",
            actor: "device",
            outcome: "info",
            detail: "removed=1",
        })
    })

    it("GP-TM-12: purges usage history past 30 days by wall time, across reboots", async () => {
        let board = await privacyBoard()
        let rig = await openRig(board)
        await rig.manager.collect("usage-history", { day: T0 / DAY, energy: 1200 })
        setWall(board, T0 + 20 * DAY)
        await rig.manager.collect("usage-history", { day: T0 / DAY + 20, energy: 900 })

        board = await board.powerCycle()
        setWall(board, T0 + 31 * DAY)
        rig = await openRig(board)
        const removed = await rig.manager.purgeExpired()

        expect(removed).toBe(1)
        expect(rig.manager.held("usage-history").map((i) => i.fields.energy)).toEqual([900])
        board = await board.powerCycle()
        expect((await openRig(board)).manager.held("usage-history")).toHaveLength(1)
    })

    it("GP-TM-12: refuses flash data with a retention while wall time is unknown", async () => {
        const rig = await freshRig({ wallTime: null })

        const stored = await rig.manager.collect("usage-history", { day: 19675, energy: 5 })

        expect(stored).toBe(false)
        expect(rig.prefs.keys()).toEqual([])
    })

    it("GP-TM-12: data kept until erased is never purged by age", async () => {
        const rig = await freshRig()
        await rig.manager.collect("preferences", { brightness: 10 })
        setWall(rig.board, T0 + 3650 * DAY)
        await rig.board.advance(HOUR_MS)

        expect(await rig.manager.purgeExpired()).toBe(0)
        expect(rig.manager.valueOf("preferences", "brightness")).toBe(10)
    })
})

describe("capacity", () => {
    it("GP-TM-12: the full default inventory fits a prefs copy and an MQTT payload", async () => {
        const rig = await freshRig()
        const m = rig.manager
        await m.setConsent("telemetry", true, "operator:12345678")
        await m.setConsent("location", true, "operator:12345678")
        await m.collect("owner-profile", { name: "Ö".repeat(64), contact: "€".repeat(96) })
        await m.collect("preferences", { unit: "c", brightness: 100, nightMode: 1 })
        await m.collect("location", { lat: -89.99, lon: -179.99 })
        const day = { day: 99999, energy: 999999, meanTemp: -39.9 }
        for (let i = 0; i < 31; i++) expect(await m.collect("usage-history", day)).toBe(true)
        for (let i = 0; i < 100; i++)
            await m.collect("telemetry", { temperature: -39.9, humidity: 100, power: 9999 })
        await m.setRestricted(true, "console:owner")

        const stored = Buffer.byteLength(JSON.stringify(rig.prefs.snapshot()))
        const reply = await handleConsoleLine(rightsFor(rig, { owner: true }), "privacy export")

        expect(stored).toBeLessThan(rig.prefs.capacity())
        expect(replyPayload(reply).length).toBeLessThan(16384)
    })
})

describe("manager wiring", () => {
    it("exposes the default inventory and notice", async () => {
        const rig = await freshRig()

        expect(rig.manager.categories()).toBe(DEFAULT_INVENTORY)
        expect(rig.manager.noticeVersion()).toBe("1")
        expect(rig.manager).toBeInstanceOf(PrivacyManager)
    })
})
