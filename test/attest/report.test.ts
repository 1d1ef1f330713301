/**
 * Remote attestation formats and checks (src/attest.ts; GP-TM-56, GP-TM-41): a device on a
 * SimBoard answers operator-signed requests with a report of its measured boot signed by
 * its identity key; the offline verifier refuses altered, replayed, foreign and unexpected
 * reports, and the device refuses requests it cannot trust.
 */

import { join } from "node:path"

import { p256 } from "@noble/curves/nist.js"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { MeasuredBoot } from "../../boot/stub"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import {
    AttestContext,
    AttestError,
    KEY_SLOT_ACTIVE,
    KEY_SLOT_BLANK,
    KEY_SLOT_REVOKED,
    decodeReport,
    decodeRequest,
    serveRequest,
} from "../../src/attest"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { signAttestRequest, verifyReportBytes } from "../../tools/attest"
import { signExportRequest } from "../../tools/audit-verify"
import { removeTempDirs, tempDir } from "../transport/fixtures"

const DIGEST = "5a".repeat(32)
const MEASURED: MeasuredBoot = {
    slot: "b",
    version: "2.1.0",
    securityCounter: 7,
    digest: DIGEST,
    keySlot: 0,
    trial: true,
    attempt: 1,
    event: "none",
    eventSlot: null,
}
const operatorKey = Buffer.from(p256.utils.randomSecretKey())
const strangerKey = Buffer.from(p256.utils.randomSecretKey())
const WALL = 1_800_000_000

let board: SimBoard
let devicePub: Buffer
let otherPub: Buffer

function context(): AttestContext {
    return {
        secureElement: board.secureElement,
        crypto: board.crypto,
        clock: board.clock,
        otp: board.otp,
        deviceId: "dev-attest-1",
        operatorKeys: [Buffer.from(p256.getPublicKey(operatorKey, false))],
        recentNonces: [],
        measured: MEASURED,
        selfTest: { ok: true, failed: [] },
    }
}

async function newBoard(name: string): Promise<SimBoard> {
    const dir = join(tempDir("bulwark-attest-"), name)
    const created = await SimBoard.create(dir, {
        profile: testProfileJson(),
        trust: [Buffer.alloc(32, 1), Buffer.alloc(32, 2)],
        counter: 7,
    })
    created.close()
    return await SimBoard.open(dir, { wallTime: WALL })
}

/** A genuine report for a fresh request, and the request's nonce. */
async function genuine(ctx = context()): Promise<{ report: Buffer; nonce: Buffer }> {
    const request = signAttestRequest(operatorKey, ctx.deviceId, 0)
    const served = await serveRequest(ctx, request.bytes)
    expect(served.check).toBe("ok")
    return { report: served.report!, nonce: request.nonce }
}

beforeAll(async () => {
    board = await newBoard("device")
    devicePub = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
    await board.otp.revokeKeySlot(1)
    const other = await newBoard("other")
    otherPub = await other.secureElement.generateKey(SE_SLOT_IDENTITY)
    other.close()
})

afterAll(() => {
    board.close()
    removeTempDirs()
})

describe("attestation report", () => {
    it("GP-TM-56: a genuine report verifies and states the measured boot, OTP state, self-test and time", async () => {
        const { report, nonce } = await genuine()

        const r = await verifyReportBytes(devicePub, report, {
            nonce,
            digest: Buffer.from(DIGEST, "hex"),
            minCounter: 7,
        })

        expect(r).toMatchObject({
            deviceId: "dev-attest-1", slot: "b", version: "2.1.0", securityCounter: 7,
            keySlot: 0, trial: true, attempt: 1, otpCounter: 7, selfTestOk: true,
            selfTestFailed: "", time: WALL,
        })
        expect(r.digest.toString("hex")).toBe(DIGEST)
        expect(r.keySlots).toEqual([KEY_SLOT_ACTIVE, KEY_SLOT_REVOKED, KEY_SLOT_BLANK])
    })

    it("GP-TM-56: any altered byte of a report is refused", async () => {
        const { report, nonce } = await genuine()
        const expectNothing = { nonce, digest: null, minCounter: null }

        for (let i = 5; i < report.length; i++) {
            const altered = Buffer.from(report)
            altered[i] ^= 0x01
            const outcome = await verifyReportBytes(devicePub, altered, expectNothing).then(
                () => "accepted",
                (e) => (e instanceof AttestError ? e.check : String(e))
            )
            expect(["signature", "format"], `byte ${i}`).toContain(outcome)
        }
    })

    it("GP-TM-56: a replayed report (the nonce of an earlier request) is refused", async () => {
        const old = await genuine()
        const fresh = signAttestRequest(operatorKey, "dev-attest-1", 0)

        const verdict = verifyReportBytes(devicePub, old.report, {
            nonce: fresh.nonce, digest: null, minCounter: null,
        })

        await expect(verdict).rejects.toMatchObject({ check: "nonce" })
    })

    it("GP-TM-56: a report checked against another device's key is refused", async () => {
        const { report, nonce } = await genuine()

        const verdict = verifyReportBytes(otherPub, report, { nonce, digest: null, minCounter: null })

        await expect(verdict).rejects.toMatchObject({ check: "signature" })
    })

    it("GP-TM-41: a report of an image that is not the expected one, or of a lower security counter, is refused", async () => {
        const { report, nonce } = await genuine()

        const wrongImage = verifyReportBytes(devicePub, report, {
            nonce, digest: Buffer.alloc(32, 0xa5), minCounter: null,
        })
        const oldCounter = verifyReportBytes(devicePub, report, { nonce, digest: null, minCounter: 8 })

        await expect(wrongImage).rejects.toMatchObject({ check: "digest" })
        await expect(oldCounter).rejects.toMatchObject({ check: "counter" })
    })

    it("GP-TM-56: a failed self-test and an unknown time are reported as such", async () => {
        const ctx = context()
        ctx.selfTest = { ok: false, failed: ["sha256", "hmac-sha256"] }

        const { report, nonce } = await genuine(ctx)
        const r = await verifyReportBytes(devicePub, report, { nonce, digest: null, minCounter: null })

        expect(r.selfTestOk).toBe(false)
        expect(r.selfTestFailed).toBe("sha256,hmac-sha256")
    })

    it("GP-TM-56: truncated, extended or random bytes are format errors, never anything else", async () => {
        const { report } = await genuine()

        for (const bad of [report.subarray(0, report.length - 1), Buffer.concat([report, Buffer.alloc(1)])])
            expect(() => decodeReport(bad)).toThrowError(AttestError)
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
                try {
                    decodeReport(Buffer.from(bytes))
                } catch (e) {
                    return e instanceof AttestError && e.check === "format"
                }
                return true
            }),
            { numRuns: 300 }
        )
    })
})

describe("attestation request on the device", () => {
    it("GP-TM-56: unsigned, stranger-signed, tampered, other-device and replayed requests get no report", async () => {
        const ctx = context()
        const good = signAttestRequest(operatorKey, ctx.deviceId, 0).bytes
        const tampered = Buffer.from(good)
        tampered[25] ^= 1 // inside the nonce
        const attempts: Array<[Buffer, string]> = [
            [good.subarray(0, good.length - 64), "format"],
            [signAttestRequest(strangerKey, ctx.deviceId, 0).bytes, "operator"],
            [tampered, "signature"],
            [signAttestRequest(operatorKey, "dev-someone-else", 0).bytes, "device"],
            [signAttestRequest(operatorKey, ctx.deviceId, WALL - 1).bytes, "expired"],
        ]
        await serveRequest(ctx, good)

        for (const [request, check] of attempts)
            expect(await serveRequest(ctx, request)).toMatchObject({ check, report: null })
        expect(await serveRequest(ctx, good)).toMatchObject({ check: "replayed", report: null })
    })

    it("GP-TM-56: an audit export request, though operator-signed, is not an attestation request", async () => {
        const exportRequest = signExportRequest(operatorKey, "dev-attest-1", 0, 0).bytes

        const served = await serveRequest(context(), exportRequest)

        expect(served).toMatchObject({ check: "format", report: null })
        expect(() => decodeRequest(exportRequest)).toThrowError(AttestError)
    })

    it("GP-TM-56: a device whose identity key is gone answers nothing", async () => {
        const wiped = await newBoard("wiped")
        await wiped.secureElement.generateKey(SE_SLOT_IDENTITY)
        await wiped.secureElement.zeroize()
        const ctx = { ...context(), secureElement: wiped.secureElement }

        const served = await serveRequest(ctx, signAttestRequest(operatorKey, ctx.deviceId, 0).bytes)

        wiped.close()
        expect(served).toMatchObject({ check: "identity", report: null })
    })
})
