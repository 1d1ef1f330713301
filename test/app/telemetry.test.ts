/**
 * Signed telemetry in the running app (src/app.ts, src/telemetry.ts; GP-TM-41), on a
 * provisioned SimBoard with the virtual clock and an in-memory broker: what the app
 * publishes on bulwark/<id>/telemetry is an envelope the backend verifies offline with the
 * key `bulwark audit device-pub` exports; the boot number rises once per boot, not per
 * message, and the sequence orders the messages within a boot.
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_COUNTER_TELEMETRY } from "../../hal/secure-element"
import { OTA_STATUS_LABEL, TelemetryError, TelemetryMessage, decodeTelemetry } from "../../src/telemetry"
import { testProfileJson } from "../../sim/testing"
import { readDevicePublicKey } from "../../tools/audit-verify"
import { createCa } from "../../tools/ca"
import { verifyTelemetryBytes } from "../../tools/telemetry"
import { runCli } from "../helpers/cli"
import { removeTempDirs, tempDir } from "../transport/fixtures"
import { measuredBoot, powerOff, powerOn as powerOnApp, provisionedBoard } from "./harness"
import { RunningApp, WALL_TIME } from "./harness"

const MEASURED = measuredBoot("1.2.0", 2)

let caDir: string

beforeAll(async () => {
    caDir = join(tempDir("bulwark-telemetry-ca-"), "ca")
    await createCa(caDir, "Telemetry fleet")
})

afterAll(() => removeTempDirs())

function newDevice(): Promise<{ dir: string; id: string }> {
    return provisionedBoard(caDir, testProfileJson(), 2)
}

/** Powers the board in `dir` on and runs the app on the virtual clock for `ms`. */
function powerOn(dir: string, ms: number): Promise<RunningApp> {
    return powerOnApp(dir, MEASURED, { telemetryMs: 100 }, ms)
}

/** The payloads the app published on its telemetry topic, in order. */
function telemetry(r: RunningApp): Buffer[] {
    return r.mqtt()
        .delivered.filter((d) => d.topic === `bulwark/${r.id}/telemetry`)
        .map((d) => d.payload)
}

/** The device public key as `bulwark audit device-pub --dir` exports it (PEM). */
async function exportedKey(dir: string): Promise<{ file: string; key: Buffer }> {
    const file = join(dir, "..", "device.pem")
    const res = await runCli(["audit", "device-pub", "--dir", dir, "--out", file, "--json"])
    expect(res.code).toBe(0)
    return { file, key: readDevicePublicKey(file) }
}

describe("telemetry of the running app", () => {
    it("GP-TM-41: the app publishes telemetry signed by its identity key that verifies offline", async () => {
        const device = await newDevice()
        const r = await powerOn(device.dir, 1500)
        const counter = await r.board.secureElement.readCounter(SE_COUNTER_TELEMETRY)
        const sent = telemetry(r)
        const statuses = r.mqtt()
            .delivered.filter((d) => d.topic === `bulwark/${r.id}/ota/status`)
            .map((d) => d.payload)
        await powerOff(r)
        const { key } = await exportedKey(device.dir)

        expect(sent.length).toBeGreaterThanOrEqual(5)
        const messages: TelemetryMessage[] = []
        let last: { boot: number; seq: number } | null = null
        for (const payload of sent) {
            const m = await verifyTelemetryBytes(key, payload, { deviceId: device.id, after: last })
            messages.push(m)
            last = { boot: m.boot, seq: m.seq }
        }
        // The update agent's status reports share the signer's sequence (docs/telemetry.md,
        // "One envelope, one label per kind"): together the two kinds count 1, 2, 3, ...
        const statusSeqs: number[] = []
        for (const payload of statuses) {
            const expect_ = { deviceId: device.id, after: null, label: OTA_STATUS_LABEL }
            statusSeqs.push((await verifyTelemetryBytes(key, payload, expect_)).seq)
        }
        expect(statusSeqs.length).toBeGreaterThan(0)
        const all = [...messages.map((m) => m.seq), ...statusSeqs].sort((a, b) => a - b)
        expect(all).toEqual(all.map((_, i) => i + 1))
        expect(new Set(messages.map((m) => m.boot))).toEqual(new Set([counter]))
        expect(messages[0].time).toBe(WALL_TIME)
        const body = JSON.parse(messages[0].body.toString())
        expect(body).toMatchObject({ v: 1, version: "1.2.0", slot: "a", trial: false, selfTest: true })
        expect(Math.max(...sent.map((p) => p.length))).toBeLessThanOrEqual(
            r.board.profile.transport.maxPayload
        )
    })

    it("GP-TM-41: the boot number rises across a reboot of the sim board, once per boot, not per message", async () => {
        const device = await newDevice()
        const first = await powerOn(device.dir, 1000)
        const firstSent = telemetry(first)
        await powerOff(first)

        const second = await powerOn(device.dir, 1000)
        const secondSent = telemetry(second)
        const counter = await second.board.secureElement.readCounter(SE_COUNTER_TELEMETRY)
        await powerOff(second)

        const a = firstSent.map((p) => decodeTelemetry(p).message)
        const b = secondSent.map((p) => decodeTelemetry(p).message)
        expect(a.length).toBeGreaterThan(2)
        expect(b.length).toBeGreaterThan(2)
        expect(new Set(a.map((m) => m.boot)).size).toBe(1)
        expect(new Set(b.map((m) => m.boot)).size).toBe(1)
        expect(b[0].boot).toBe(a[0].boot + 1)
        expect(counter).toBe(b[0].boot)
        expect(b[0].seq).toBe(1)
    })

    it("GP-TM-41: after a reboot the backend accepts the new boot's telemetry and refuses the old boot's", async () => {
        const device = await newDevice()
        const first = await powerOn(device.dir, 600)
        const old = telemetry(first)
        await powerOff(first)
        const second = await powerOn(device.dir, 600)
        const fresh = telemetry(second)
        await powerOff(second)
        const { file, key } = await exportedKey(device.dir)
        const lastOld = decodeTelemetry(old[old.length - 1]).message
        const after = `${lastOld.boot}:${lastOld.seq}`
        const freshFile = join(device.dir, "..", "fresh.bin")
        const oldFile = join(device.dir, "..", "old.bin")
        writeFileSync(freshFile, fresh[0])
        writeFileSync(oldFile, old[0])

        const accepted = await runCli(["telemetry", "verify", freshFile, "--device-pub", file,
            "--device", device.id, "--after", after, "--json"])
        const refused = await runCli(["telemetry", "verify", oldFile, "--device-pub", file,
            "--device", device.id, "--after", after, "--json"])
        const replay = verifyTelemetryBytes(key, old[old.length - 1], {
            deviceId: device.id, after: { boot: lastOld.boot, seq: lastOld.seq },
        })

        expect(accepted.code).toBe(0)
        expect(accepted.json).toMatchObject({
            ok: true, deviceId: device.id, boot: lastOld.boot + 1, seq: 1,
        })
        expect(refused.code).toBe(1)
        expect(refused.json).toMatchObject({ ok: false, check: "order" })
        await expect(replay).rejects.toBeInstanceOf(TelemetryError)
        await expect(replay).rejects.toMatchObject({ check: "replayed" })
    })
})
