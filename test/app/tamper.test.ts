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

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { signAttestRequest, verifyReportBytes } from "../../tools/attest"
import { createCa } from "../../tools/ca"
import { removeTempDirs, tempDir } from "../transport/fixtures"
import { advance, auditRecords, measuredBoot, powerOff, powerOn as powerOnApp } from "./harness"
import { provisionedBoard, RunningApp } from "./harness"

const DIGEST = "c3".repeat(32)
const MEASURED = measuredBoot("1.4.0", 3, DIGEST)
const operatorKey = Buffer.from(p256.utils.randomSecretKey())
const operatorPub = Buffer.from(p256.getPublicKey(operatorKey, false)).toString("hex")

let caDir: string

beforeAll(async () => {
    caDir = join(tempDir("bulwark-tamper-ca-"), "ca")
    await createCa(caDir, "Tamper test fleet")
})

afterAll(() => removeTempDirs())

async function newDevice(): Promise<string> {
    const profile = testProfileJson({ profile: { security: { overrides: [], operatorKeys: [operatorPub] } } })
    return (await provisionedBoard(caDir, profile, 3)).dir
}

/** Powers the board in `dir` on and runs the app object on the virtual clock. */
function powerOn(dir: string): Promise<RunningApp> {
    return powerOnApp(dir, MEASURED, { telemetryMs: 200 })
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
