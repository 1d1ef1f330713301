/**
 * The running app on a SimBoard with the virtual clock and an in-memory broker, where the
 * runner's real clock would be too slow: rate limits on inbound commands and outbound
 * publishes with one summary record per period (GP-TM-46), and the session's events in
 * the audit log under stable names, without credentials (GP-TM-17, GP-TM-55); the owner's
 * readings collected and sent only with consent given by a signed request (GP-TM-10..14).
 */

import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { AuditRecord } from "../../src/audit/record"
import { DATA_TELEMETRY_LABEL, PRIVACY_REPLY_LABEL } from "../../src/telemetry"
import { PARTITION_PREFS, encodePrefsRecord } from "../../src/prefs"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { createCa } from "../../tools/ca"
import { verifyTelemetryBytes } from "../../tools/telemetry"
import { operatorPublic, requestBody, signedEnvelope, strangerSecret } from "../privacy/helpers"
import { removeTempDirs, tempDir } from "../transport/fixtures"
import { advance, auditRecords, measuredBoot, powerOff, powerOn } from "./harness"
import { provisionedBoard, RunningApp } from "./harness"

const MEASURED = measuredBoot("1.0.0", 1)

let caDir: string

beforeAll(async () => {
    caDir = join(tempDir("bulwark-app-ca-"), "ca")
    await createCa(caDir, "App services fleet")
})

afterAll(() => removeTempDirs())

/** A provisioned board running the app object itself, on the virtual clock. */
async function runApp(
    rateLimits: Record<string, unknown>,
    extra: {
        security?: unknown
        readings?: () => Promise<Record<string, unknown> | null>
        /** An existing provisioned device to start again (its id), instead of a new one. */
        again?: { dir: string; id: string }
    } = {}
): Promise<RunningApp> {
    const profile = testProfileJson({
        profile: {
            rateLimits: {
                commands: { ratePerSec: 1, burst: 5 },
                publishes: { ratePerSec: 20, burst: 50 },
                logins: { ratePerSec: 1, burst: 3 },
                updates: { ratePerSec: 1, burst: 2 },
                ...rateLimits,
            },
            ...(extra.security ? { security: extra.security } : {}),
        },
    })
    const dir = extra.again ? extra.again.dir : (await provisionedBoard(caDir, profile, 1)).dir
    const options = { telemetryMs: 100, rateSummaryMs: 5000, readings: extra.readings }
    return powerOn(dir, MEASURED, options)
}

/** Stops the app and reads back the audit records it wrote. */
async function records(r: RunningApp): Promise<AuditRecord[]> {
    await powerOff(r)
    return auditRecords(r.dir)
}

describe("rate limits in the running app", () => {
    it("GP-TM-46: a flood of commands is cut to the burst, and the drops are one summary record", async () => {
        const r = await runApp({})
        expect(r.app.state().connected).toBe(true)

        for (let i = 0; i < 40; i++)
            r.mqtt().inject(`bulwark/${r.id}/audit/export-request`, Buffer.from("not a request"))
        await advance(r, 6000)

        const all = await records(r)
        const refused = all.filter((x) => x.event === "log-export")
        const summaries = all.filter((x) => x.event === "rate-limit")
        expect(refused.length).toBeGreaterThanOrEqual(5)
        expect(refused.length).toBeLessThan(15)
        expect(summaries).toHaveLength(1)
        expect(summaries[0].outcome).toBe("refused")
        expect(summaries[0].detail).toMatch(/^commands=\d+ /)
        expect(summaries[0].detail).toContain("sources=audit")
        const dropped = Number(/commands=(\d+)/.exec(summaries[0].detail)![1])
        expect(dropped + refused.length).toBe(40)
    })

    it("GP-TM-46: outbound publishes past the limit are dropped and counted in the summary", async () => {
        const r = await runApp({ publishes: { ratePerSec: 1, burst: 1 } })

        await advance(r, 6000)

        const sent = r.mqtt().delivered.filter((d) => d.topic.endsWith("/telemetry"))
        const all = await records(r)
        const summary = all.find((x) => x.event === "rate-limit")
        expect(sent.length).toBeLessThan(15)
        expect(summary!.detail).toMatch(/ publishes=[1-9]\d* /)
    })

    it("GP-TM-46: malformed inbound messages are audited only up to the limit; the rest are counted", async () => {
        const r = await runApp({})

        for (let i = 0; i < 30; i++)
            r.mqtt().inject(`bulwark/${r.id}/nosuchchannel`, Buffer.from("x"))
        await advance(r, 6000)

        const all = await records(r)
        const rejected = all.filter((x) => x.event === "session-inbound-rejected")
        const summary = all.find((x) => x.event === "rate-limit")
        expect(rejected.length).toBeGreaterThanOrEqual(5)
        expect(rejected.length).toBeLessThan(15)
        expect(rejected[0]).toMatchObject({ outcome: "refused", detail: "check=topic channel=nosuchchannel" })
        expect(summary!.detail).toContain("sources=(rejected)")
    })
})

describe("session events in the audit log", () => {
    it("GP-TM-17: an outage is recorded as start, first failed connect and end; no credential in any record", async () => {
        const r = await runApp({})

        r.mqtt().goDown()
        await advance(r, 3000)
        r.mqtt().comeBack()
        await advance(r, 70000)

        expect(r.app.state().connected).toBe(true)
        const all = await records(r)
        const session = all.filter((x) => x.event.startsWith("session-")).map((x) => x.event)
        expect(session).toEqual([
            "session-connected",
            "session-outage-start",
            "session-connect-failed",
            "session-connected",
            "session-outage-end",
        ])
        const failed = all.find((x) => x.event === "session-connect-failed")!
        expect(failed.detail).toBe("code=closed")
        const text = JSON.stringify(all.map((x) => [x.actor, x.detail]))
        expect(text).not.toMatch(/BEGIN|PRIVATE|token|password/i)
    })
})

describe("personal data in the running app", () => {
    const security = { overrides: [], operatorKeys: [operatorPublic.toString("hex")] }
    const readings = async () => ({ temperature: 21.5, humidity: 40, ownerName: "Zoe" })
    const consent = (id: string, seq: number, grant: boolean) =>
        signedEnvelope(
            requestBody({
                device: id,
                seq,
                expires: 1_800_003_600,
                right: "consent",
                args: { category: "telemetry", grant },
            })
        )
    const data = (r: RunningApp) => r.mqtt().delivered.filter((d) => d.topic.endsWith("/data/telemetry"))
    /** The JSON bodies of the envelopes on `suffix`, each verified as `label` (GP-TM-41). */
    const bodies = async (r: RunningApp, suffix: string, label: string) => {
        const key = await r.board.secureElement.publicKey(SE_SLOT_IDENTITY)
        const out: any[] = []
        for (const d of r.mqtt().delivered.filter((x) => x.topic.endsWith(suffix))) {
            const m = await verifyTelemetryBytes(key, d.payload, { deviceId: r.id, after: null, label })
            out.push(JSON.parse(m.body.toString()))
        }
        return out
    }
    const replies = (r: RunningApp) => bodies(r, "/privacy/reply", PRIVACY_REPLY_LABEL)

    it("GP-TM-10: owner readings are neither collected nor sent before consent, and stop at withdrawal", async () => {
        const r = await runApp({}, { security, readings })
        await advance(r, 1000)
        const before = data(r).length

        r.mqtt().inject(`bulwark/${r.id}/privacy/request`, consent(r.id, 1, true))
        await advance(r, 1000)
        const granted = data(r).length
        r.mqtt().inject(`bulwark/${r.id}/privacy/request`, consent(r.id, 2, false))
        await advance(r, 300)
        const withdrawn = data(r).length
        await advance(r, 1000)

        expect(before).toBe(0)
        expect(granted).toBeGreaterThan(0)
        expect(data(r).length).toBe(withdrawn)
        expect((await replies(r)).map((x) => [x.right, x.ok])).toEqual([
            ["consent", true],
            ["consent", true],
        ])
        const item = (await bodies(r, "/data/telemetry", DATA_TELEMETRY_LABEL))[0]
        expect(item.d).toEqual({ temperature: 21.5, humidity: 40 })
        const all = await records(r)
        expect(all.filter((x) => x.event === "privacy-consent")).toHaveLength(2)
        expect(JSON.stringify(all)).not.toContain("Zoe")
    })

    it("GP-TM-31: consent planted as an unsealed prefs record while the device is off is refused and audited as tamper", async () => {
        const first = await runApp({}, { security, readings })
        first.mqtt().inject(`bulwark/${first.id}/privacy/request`, consent(first.id, 1, true))
        await advance(first, 1000)
        expect(data(first).length).toBeGreaterThan(0)
        // What the granted state looks like in flash: the running app wrote it sealed.
        const part = first.board.flash.partition(PARTITION_PREFS)
        const half = part.size / 2
        const image = first.board.flash.peek(PARTITION_PREFS, 0, part.size)
        const live = image.subarray(0, 4).toString() === "BWPF" ? 0 : 1
        const record = image.subarray(live * half, (live + 1) * half)
        expect(record[4]).toBe(2)
        const granted = JSON.parse(
            record.subarray(16, 16 + record.readUInt32BE(12)).toString()
        ) as Record<string, string>
        first.mqtt().inject(`bulwark/${first.id}/privacy/request`, consent(first.id, 2, false))
        await advance(first, 500)
        await records(first)

        // Off the board, the attacker writes the granted values back with a higher
        // sequence number and a correct digest, in the unsealed format they can compute.
        const board = await SimBoard.open(first.dir)
        const forged = encodePrefsRecord(board.crypto, granted, 1000, 4)
        const p = board.flash.partition(PARTITION_PREFS)
        const free = 1 - live
        await p.erase(free * half, half)
        await p.program(free * half, forged)
        board.close()

        const r = await runApp({}, { security, readings, again: { dir: first.dir, id: first.id } })
        await advance(r, 1500)
        expect(data(r)).toHaveLength(0)
        const all = await records(r)
        const tamper = all.filter((x) => x.event === "tamper")
        expect(tamper.map((x) => x.detail)).toEqual([`store=prefs copy=${free} reason=unsealed`])
    })

    it("GP-TM-14: a privacy request signed by an unlisted key is refused and changes nothing", async () => {
        const r = await runApp({}, { security, readings })
        const body = requestBody({
            device: r.id,
            seq: 1,
            expires: 1_800_003_600,
            right: "consent",
            args: { category: "telemetry", grant: true },
        })

        r.mqtt().inject(`bulwark/${r.id}/privacy/request`, signedEnvelope(body, strangerSecret))
        await advance(r, 1000)

        expect(await replies(r)).toMatchObject([{ ok: false, error: "refused" }])
        expect(data(r)).toHaveLength(0)
        const all = await records(r)
        expect(all.find((x) => x.event === "privacy-request")).toMatchObject({ outcome: "refused" })
    })
})
