/**
 * The tamper response and attestation in the running app, on a SimBoard with the virtual
 * clock and an in-memory broker (GP-TM-31, GP-TM-56): an opened enclosure is recorded,
 * then the secure element is zeroized, the session closed and nothing more is sent; after
 * a power cycle the device refuses to connect and says so. Before that, the app answers
 * an operator-signed attestation request with a report that verifies.
 */

import { join } from "node:path"

import { p256 } from "@noble/curves/nist.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { MeasuredBoot } from "../../boot/stub"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { BulwarkApp, createApp } from "../../src/app"
import { AuditLog } from "../../src/audit/log"
import { AuditRecord } from "../../src/audit/record"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { signAttestRequest, verifyReportBytes } from "../../tools/attest"
import { createCa } from "../../tools/ca"
import { provision } from "../../tools/provision"
import { FakeMqtt } from "../transport/fake-mqtt"
import { removeTempDirs, tempDir } from "../transport/fixtures"

const DIGEST = "c3".repeat(32)
const MEASURED: MeasuredBoot = {
    slot: "a",
    version: "1.4.0",
    securityCounter: 3,
    digest: DIGEST,
    keySlot: 0,
    trial: false,
    attempt: 0,
    event: "none",
    eventSlot: null,
}
const operatorKey = Buffer.from(p256.utils.randomSecretKey())
const operatorPub = Buffer.from(p256.getPublicKey(operatorKey, false)).toString("hex")

let caDir: string

beforeAll(async () => {
    caDir = join(tempDir("bulwark-tamper-ca-"), "ca")
    await createCa(caDir, "Tamper test fleet")
})

afterAll(() => removeTempDirs())

interface Running {
    id: string
    board: SimBoard
    app: BulwarkApp
    mqtt: () => FakeMqtt
    lines: string[]
    done: Promise<void>
}

async function newDevice(): Promise<string> {
    const dir = join(tempDir("bulwark-tamper-"), "dev")
    const profile = testProfileJson({ profile: { security: { overrides: [], operatorKeys: [operatorPub] } } })
    const created = await SimBoard.create(dir, { profile, trust: [], counter: 3 })
    created.close()
    await provision({ devDir: dir, caDir, iterations: 1000 })
    return dir
}

/** Powers the board in `dir` on and runs the app object on the virtual clock. */
async function powerOn(dir: string): Promise<Running> {
    let mqtt: FakeMqtt | null = null
    const board = await SimBoard.open(dir, {
        wallTime: 1_800_000_000,
        mqtt: (b) => (mqtt = new FakeMqtt(b.clock)),
    })
    const lines: string[] = []
    const app = createApp(
        {
            board,
            profile: board.profile,
            measured: MEASURED,
            spawn: (task) => void task().catch(() => undefined),
            log: (line) => lines.push(line),
        },
        { telemetryMs: 200 }
    )
    const done = app.run().catch(() => undefined)
    const running = { id: "", board, app, mqtt: () => mqtt!, lines, done }
    await advance(running, 300)
    running.id = app.state().deviceId ?? ""
    return running
}

async function advance(r: Running, ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 50) await r.board.advance(50)
}

async function powerOff(r: Running): Promise<void> {
    await r.app.stop()
    await r.board.advance(200)
    await r.done
    r.board.close()
}

async function auditRecords(dir: string): Promise<AuditRecord[]> {
    const board = await SimBoard.open(dir)
    const log = await AuditLog.open({
        partition: board.flash.partition("audit"),
        secureElement: board.secureElement,
        crypto: board.crypto,
        clock: board.clock,
    })
    const out: AuditRecord[] = []
    await log.forEach(0, async (rec) => {
        out.push(rec)
    })
    board.close()
    return out
}

describe("attestation in the running app", () => {
    it("GP-TM-56: answers an operator-signed request on attest/report with a report that verifies", async () => {
        const dir = await newDevice()
        const r = await powerOn(dir)
        const pub = await r.board.secureElement.publicKey(SE_SLOT_IDENTITY)
        const request = signAttestRequest(operatorKey, r.id, 0)

        r.mqtt().inject(`bulwark/${r.id}/attest/request`, request.bytes)
        await advance(r, 300)

        const reports = r.mqtt().delivered.filter((d) => d.topic === `bulwark/${r.id}/attest/report`)
        expect(reports).toHaveLength(1)
        const report = await verifyReportBytes(pub, reports[0].payload, {
            nonce: request.nonce, digest: Buffer.from(DIGEST, "hex"), minCounter: 3,
        })
        expect(report).toMatchObject({ deviceId: r.id, version: "1.4.0", otpCounter: 3, selfTestOk: true })
        await powerOff(r)
        const served = (await auditRecords(dir)).filter((x) => x.event === "attest")
        expect(served.map((x) => x.outcome)).toEqual(["success"])
    })
})

describe("tamper response", () => {
    it("GP-TM-31: an opened enclosure is recorded, then the keys are zeroized, the session closed and nothing sent", async () => {
        const dir = await newDevice()
        const r = await powerOn(dir)
        expect(r.app.state().connected).toBe(true)

        r.board.tamper.trigger()
        await advance(r, 300)
        const sentAfterResponse = r.mqtt().delivered.length
        await advance(r, 3000)

        expect(r.app.state()).toMatchObject({ tampered: true, connected: false })
        expect(r.mqtt().delivered.length).toBe(sentAfterResponse)
        await expect(r.board.secureElement.publicKey(SE_SLOT_IDENTITY)).rejects.toMatchObject({
            code: "zeroized",
        })
        await expect(r.board.secureElement.hmac(1, Buffer.from("x"))).rejects.toMatchObject({
            code: "zeroized",
        })
        expect(r.lines.some((l) => l.startsWith("tamper: switch=open"))).toBe(true)
        await powerOff(r)
        const records = await auditRecords(dir)
        const tamper = records.findIndex((x) => x.event === "tamper")
        expect(records[tamper]).toMatchObject({
            actor: "tamper-switch", outcome: "failure",
            detail: "switch=open identity=present zeroize=done",
        })
        // The record is sealed by a checkpoint signed while the identity key still existed.
        expect(records[tamper + 1].event).toBe("audit-checkpoint")
    })

    it("GP-TM-31: after a power cycle the device refuses to connect (no identity key) and says so", async () => {
        const dir = await newDevice()
        const first = await powerOn(dir)
        first.board.tamper.trigger()
        await advance(first, 300)
        await powerOff(first)
        const closed = await SimBoard.open(dir)
        closed.tamper.clear()
        closed.close()

        const again = await powerOn(dir)
        await advance(again, 3000)

        expect(again.app.state()).toMatchObject({ tampered: true, connected: false, deviceId: null })
        expect(again.mqtt().attempts).toHaveLength(0)
        expect(again.lines).toContain("identity key zeroized (tamper response): refusing to connect")
        await powerOff(again)
        const records = await auditRecords(dir)
        expect(records.filter((x) => x.event === "tamper").map((x) => [x.outcome, x.detail])).toEqual([
            ["failure", "switch=open identity=present zeroize=done"],
            ["refused", "identity=zeroized network=off"],
        ])
    })

    it("GP-TM-31: an enclosure opened while the power was off is answered before any connect", async () => {
        const dir = await newDevice()
        const off = await SimBoard.open(dir)
        off.tamper.trigger()
        off.close()

        const r = await powerOn(dir)

        expect(r.app.state()).toMatchObject({ tampered: true, connected: false })
        expect(r.mqtt().attempts).toHaveLength(0)
        await powerOff(r)
    })
})
