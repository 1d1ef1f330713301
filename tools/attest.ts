/**
 * Host side of remote attestation (docs/attestation.md; GP-TM-56): builds an
 * operator-signed attestation request with a fresh nonce, and verifies a device's report
 * offline with the portable verifier (src/attest.ts) and the device public key.
 */

import { randomBytes } from "node:crypto"
import { p256 } from "@noble/curves/nist.js"
import {
    AttestExpectation,
    AttestReport,
    encodeRequestBody,
    requestMessage,
    verifyReport,
} from "../src/attest"
import { cryptoSignatureCheck } from "../src/audit/verify"
import { SimCrypto } from "../sim/crypto"
import { SignedRequest } from "./audit-verify"

const crypto = new SimCrypto()

/** An attestation request for `deviceId` with a fresh 16-byte nonce, signed by the operator. */
export function signAttestRequest(
    operatorKey: Buffer,
    deviceId: string,
    expires: number
): SignedRequest {
    const publicKey = Buffer.from(p256.getPublicKey(operatorKey, false))
    const nonce = randomBytes(16)
    const body = encodeRequestBody(deviceId, nonce, expires, publicKey)
    const digest = crypto.sha256([requestMessage(body)])
    const signature = Buffer.from(p256.sign(digest, operatorKey, { prehash: false, lowS: true }))
    return { bytes: Buffer.concat([body, signature]), operatorPublicKey: publicKey, nonce }
}

/** Verifies report bytes; throws AttestError naming the first failed check. */
export async function verifyReportBytes(
    devicePub: Buffer,
    bytes: Buffer,
    expect: AttestExpectation
): Promise<AttestReport> {
    return await verifyReport(cryptoSignatureCheck(crypto), devicePub, bytes, expect)
}

/** The report as JSON-friendly fields (hex for bytes). */
export function reportJson(r: AttestReport): Record<string, unknown> {
    return {
        deviceId: r.deviceId,
        nonce: r.nonce.toString("hex"),
        slot: r.slot,
        version: r.version,
        securityCounter: r.securityCounter,
        digest: r.digest.toString("hex"),
        keySlot: r.keySlot,
        trial: r.trial,
        attempt: r.attempt,
        otpCounter: r.otpCounter,
        keySlots: r.keySlots.map((s) => ["blank", "active", "revoked"][s]),
        selfTest: { ok: r.selfTestOk, failed: r.selfTestFailed === "" ? [] : r.selfTestFailed.split(",") },
        time: r.time === 0 ? null : r.time,
    }
}
