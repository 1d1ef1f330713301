/**
 * Data-subject rights (src/privacy/rights.ts, export.ts; GP-TM-14): access and portability
 * as one JSON document holding exactly what the device holds, erasure that keeps the device
 * identity and the audit log, rectification, restriction, information; each request from
 * the logged-in owner on the console only, and each one audited without personal values.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PARTITION_PREFS } from "../../src/prefs"
import {
    KEY_REQUEST_SEQ,
    handleConsoleLine,
    replyLines,
    replyPayload,
} from "../../src/privacy/rights"
import { HELD_PREFIX } from "../../src/privacy/state"
import { cleanupTestBoards } from "../../sim/testing"
import {
    DEVICE_ID,
    Rig,
    T0,
    exportedData,
    freshRig,
    openRig,
    otherPartitions,
    populate,
    rightsFor,
} from "./helpers"

afterAll(() => cleanupTestBoards())

const OWNER = { owner: true }

async function populated(): Promise<Rig> {
    return populate(await freshRig())
}

async function console(rig: Rig, line: string, session = OWNER) {
    return handleConsoleLine(rightsFor(rig, session), line)
}

describe("access and portability", () => {
    it("GP-TM-14: the export holds exactly the items held, category by category", async () => {
        const rig = await populated()

        const reply = await console(rig, "privacy export")

        expect(reply.ok).toBe(true)
        expect(exportedData(reply.document)).toEqual({
            telemetry: [
                { t: String(T0), f: { temperature: 21.5, humidity: 44 } },
                { t: String(T0), f: { power: 230 } },
            ],
            location: [{ t: String(T0), f: { lat: 59.33, lon: 18.07 } }],
            "usage-history": [{ t: String(T0), f: { day: 19675, energy: 4321, meanTemp: 20.4 } }],
            "owner-profile": [
                { t: String(T0), f: { name: "Zoë Ångström", contact: "zoe@example.org" } },
            ],
            preferences: [{ t: String(T0), f: { unit: "c", brightness: 55, nightMode: 1 } }],
        })
    })

    it("GP-TM-14: every stored prefs key of personal data appears in the export", async () => {
        const rig = await populated()

        const doc = (await console(rig, "privacy export")).document!

        for (const key of rig.prefs.keys().filter((k) => k.startsWith(HELD_PREFIX))) {
            const category = key.slice(HELD_PREFIX.length)
            const stored = JSON.parse(rig.prefs.get(key)!)
            expect(doc.data[category], key).toEqual(stored)
        }
        expect(doc.consents.map((c: any) => [c.category, c.granted])).toEqual([
            ["location", true],
            ["telemetry", true],
        ])
    })

    it("GP-TM-14: the export states purpose, basis, recipient, retention (Art. 15)", async () => {
        const rig = await populated()

        const doc = (await console(rig, "privacy export")).document!

        expect(doc).toMatchObject({ format: "bulwark-privacy-export", deviceId: DEVICE_ID })
        const telemetry = doc.categories.find((c: any) => c.id === "telemetry")
        expect(telemetry).toMatchObject({ basis: "consent", leavesDevice: true })
        expect(telemetry.purpose).toMatch(/companion service/)
        expect(doc.elsewhere["security-log"]).toMatch(/audit-log/)
    })

    it("GP-TM-14: the export reads back the same by MQTT reply and console lines", async () => {
        const rig = await populated()
        const reply = await console(rig, "privacy export")

        const viaMqtt = JSON.parse(replyPayload(reply).toString("utf8")).document
        const lines = replyLines(reply, 64)
        const viaConsole = JSON.parse(lines.slice(1, -1).map((l) => l.slice(8)).join(""))

        expect(viaMqtt).toEqual(reply.document)
        expect(viaConsole).toEqual(reply.document)
        expect(lines[0]).toBe("privacy-begin")
        expect(lines.every((l) => l.length <= 72)).toBe(true)
    })

    it("GP-TM-14: information: the inventory alone, with no personal data", async () => {
        const rig = await populated()

        const reply = await console(rig, "privacy info")

        const text = JSON.stringify(reply.document)
        expect(reply.document!.categories).toHaveLength(7)
        expect(text).not.toContain("Zoë")
        expect(text).not.toContain("59.33")
    })
})

describe("erasure", () => {
    it("GP-TM-14: erasure removes personal data and preferences, keeps the rest", async () => {
        const rig = await populated()
        await rig.manager.setDeviceState(KEY_REQUEST_SEQ, "41")
        await rig.board.debugFlash("identity", Buffer.from("identity record stand-in"))
        const untouched = otherPartitions(rig.board)
        const auditBefore = rig.audit.length

        const reply = await console(rig, "privacy erase " + DEVICE_ID)

        expect(reply.ok).toBe(true)
        expect(rig.prefs.snapshot()).toEqual({ [KEY_REQUEST_SEQ]: "41" })
        expect(rig.manager.consents()).toEqual([])
        expect(rig.manager.mayCollect("telemetry")).toBe(false)
        expect(otherPartitions(rig.board)).toEqual(untouched)
        expect(rig.audit.length).toBeGreaterThan(auditBefore)
        const raw = rig.board.flash.peek(PARTITION_PREFS, 0, 8192)
        for (const gone of ["Ångström", "zoe@example", "59.33", "4321", "brightness"])
            expect(raw.includes(Buffer.from(gone)), gone).toBe(false)
    })

    it("GP-TM-14: after erasure the export is empty and a reboot brings nothing back", async () => {
        const rig = await populated()
        await console(rig, "privacy erase " + DEVICE_ID)

        const board = await rig.board.powerCycle()
        const after = await openRig(board)
        const doc = (await console(after, "privacy export")).document!

        expect(Object.values(doc.data).every((items: any) => items.length === 0)).toBe(true)
        expect(doc.consents).toEqual([])
    })

    it("GP-TM-14: a console erasure must repeat the device id, else nothing happens", async () => {
        const rig = await populated()
        const before = rig.prefs.snapshot()

        const reply = await console(rig, "privacy erase dev-someone-else")

        expect(reply).toMatchObject({ ok: false, error: "invalid" })
        expect(rig.prefs.snapshot()).toEqual(before)
    })

    it("GP-TM-14: the audit trail names rights and categories, never values", async () => {
        const rig = await populated()
        await console(rig, "privacy set owner-profile name Grace Brewster Hopper")
        await console(rig, "privacy export")
        await console(rig, "privacy erase " + DEVICE_ID)

        const text = JSON.stringify(rig.audit)

        for (const value of ["Grace", "Zoë", "zoe@", "59.33", "4321"])
            expect(text).not.toContain(value)
        const details = rig.audit.map((r) => r.detail)
        expect(details).toContain("right=erase kept=device-identity,security-log")
    })
})

describe("rectification and restriction", () => {
    it("GP-TM-14: rectifies a preference and a name from the console, typed by field", async () => {
        const rig = await populated()

        const a = await console(rig, "privacy set preferences brightness 80")
        const b = await console(rig, "privacy set owner-profile name Zoë Andersson")

        expect([a.ok, b.ok]).toEqual([true, true])
        expect(rig.manager.valueOf("preferences", "brightness")).toBe(80)
        expect(rig.manager.valueOf("preferences", "unit")).toBe("c")
        expect(rig.manager.valueOf("owner-profile", "name")).toBe("Zoë Andersson")
    })

    it("GP-TM-14: refuses a rectification out of bounds or of an undeclared field", async () => {
        const rig = await populated()
        const before = rig.prefs.snapshot()

        const replies = [
            await console(rig, "privacy set preferences brightness 800"),
            await console(rig, "privacy set preferences brightness bright"),
            await console(rig, "privacy set preferences volume 3"),
            await console(rig, "privacy set telemetry power 3"),
        ]

        expect(replies.map((r) => r.error)).toEqual(["failed", "failed", "failed", "failed"])
        expect(rig.prefs.snapshot()).toEqual(before)
    })

    it("GP-TM-14: restriction pauses processing, keeps data, lasts until lifted", async () => {
        const rig = await populated()
        const sent: Buffer[] = []

        await console(rig, "privacy restrict on")
        await rig.manager.collect("telemetry", { temperature: 30 })
        await rig.manager.publishHeld("telemetry", async (p) => sent.push(p) > 0)
        const board = await rig.board.powerCycle()
        const after = await openRig(board)

        expect(sent).toEqual([])
        expect(after.manager.isRestricted()).toBe(true)
        expect(after.manager.mayCollect("preferences")).toBe(false)
        expect(after.manager.valueOf("preferences", "brightness")).toBeNull()
        expect(after.manager.held("owner-profile")).toHaveLength(1)
        expect((await console(after, "privacy export")).document!.restricted).toEqual({
            at: String(T0),
        })

        await console(after, "privacy restrict off")

        expect(after.manager.mayCollect("preferences")).toBe(true)
        expect(after.manager.valueOf("preferences", "brightness")).toBe(55)
    })

    it("GP-TM-10: consent can be granted and withdrawn from the console", async () => {
        const rig = await freshRig()

        await console(rig, "privacy consent telemetry grant")
        const granted = rig.manager.mayCollect("telemetry")
        await console(rig, "privacy consent telemetry withdraw")

        expect(granted).toBe(true)
        expect(rig.manager.mayCollect("telemetry")).toBe(false)
    })
})

describe("authentication", () => {
    it("GP-TM-14: a console line without the owner session changes nothing", async () => {
        const rig = await populated()
        const before = rig.prefs.snapshot()
        const ops = rig.board.flash.opCount

        const replies = [
            await console(rig, "privacy erase " + DEVICE_ID, { owner: false }),
            await console(rig, "privacy consent location withdraw", { owner: false }),
            await console(rig, "privacy export", { owner: false }),
            await console(rig, "privacy restrict on", { owner: false }),
        ]

        expect(replies.every((r) => r.error === "refused" && r.document === null)).toBe(true)
        expect(rig.prefs.snapshot()).toEqual(before)
        expect(rig.board.flash.opCount).toBe(ops)
        expect(rig.audit.at(-1)).toEqual({
            event: "privacy-request",
            actor: "console",
            outcome: "refused",
            detail: "check=session",
        })
    })

    it("GP-TM-14: a malformed console line is invalid and changes nothing", async () => {
        const rig = await populated()
        const before = rig.prefs.snapshot()

        const reply = await console(rig, "privacy consent telemetry maybe")

        expect(reply).toMatchObject({ ok: false, error: "invalid" })
        expect(rig.prefs.snapshot()).toEqual(before)
    })
})
