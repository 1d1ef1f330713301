/**
 * Host side of the audit log (docs/audit-log.md; GP-TM-55): reads a device public key in
 * any form an operator has at hand, verifies an export file offline with the portable
 * verifier (src/audit/verify.ts), and builds operator-signed export requests.
 */

import { X509Certificate, createPrivateKey, createPublicKey, randomBytes } from "node:crypto"
import { p256 } from "@noble/curves/nist.js"
import { encodeRequestBody, requestMessage } from "../src/audit/export"
import { VerifyReport, cryptoSignatureCheck, verifyExport } from "../src/audit/verify"
import { SimCrypto } from "../sim/crypto"
import { UsageError } from "./args"
import { readInput } from "./command-helpers"

const crypto = new SimCrypto()

/** A P-256 KeyObject's 65-byte uncompressed point. */
function rawPoint(key: ReturnType<typeof createPublicKey>): Buffer {
    const jwk = key.export({ format: "jwk" })
    if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y)
        throw new UsageError("the key is not a P-256 public key")
    return Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x, "base64url"),
        Buffer.from(jwk.y, "base64url"),
    ])
}

/**
 * The device public key (65-byte uncompressed P-256) from a file holding the device
 * certificate (PEM), a PEM public key, 130 hex digits, or the 65 raw bytes.
 */
export function readDevicePublicKey(path: string): Buffer {
    const bytes = readInput(path, "device public key")
    const text = bytes.toString("utf8").trim()
    try {
        if (text.includes("-----BEGIN CERTIFICATE-----"))
            return rawPoint(new X509Certificate(text).publicKey)
        if (text.includes("-----BEGIN PUBLIC KEY-----")) return rawPoint(createPublicKey(text))
    } catch (err) {
        if (err instanceof UsageError) throw err
        throw new UsageError(`${path} holds no readable P-256 public key`)
    }
    if (/^04[0-9a-fA-F]{128}$/.test(text)) return Buffer.from(text, "hex")
    if (bytes.length === 65 && bytes[0] === 4) return bytes
    throw new UsageError(`${path}: expected a certificate, a PEM public key or 65 bytes of key`)
}

/** PEM (SPKI) of a raw P-256 public key, for `bulwark audit device-pub`. */
export function publicKeyPem(raw: Buffer): string {
    const spki = Buffer.concat([
        Buffer.from("3059301306072a8648ce3d020106082a8648ce3d030107034200", "hex"),
        raw,
    ])
    return createPublicKey({ key: spki, format: "der", type: "spki" })
        .export({ format: "pem", type: "spki" })
        .toString()
}

export async function verifyExportFile(path: string, devicePub: Buffer): Promise<VerifyReport> {
    const bytes = readInput(path, "export")
    return verifyExport(crypto, cryptoSignatureCheck(crypto), devicePub, bytes)
}

/** The operator's P-256 private key from a PEM file (e.g. `ca issue-operator`'s key). */
export function readOperatorKey(path: string): Buffer {
    const pem = readInput(path, "operator key").toString("utf8")
    try {
        const jwk = createPrivateKey(pem).export({ format: "jwk" })
        if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.d) throw new Error("not P-256")
        return Buffer.from(jwk.d, "base64url")
    } catch {
        throw new UsageError(`${path} holds no P-256 private key`)
    }
}

export interface SignedRequest {
    bytes: Buffer
    operatorPublicKey: Buffer
    nonce: Buffer
}

/** An export request for `deviceId`, signed with the operator's key (docs/audit-log.md). */
export function signExportRequest(
    operatorKey: Buffer,
    deviceId: string,
    fromSeq: number,
    expires: number
): SignedRequest {
    const publicKey = Buffer.from(p256.getPublicKey(operatorKey, false))
    const nonce = randomBytes(16)
    const body = encodeRequestBody(deviceId, nonce, fromSeq, expires, publicKey)
    const digest = crypto.sha256([requestMessage(body)])
    const signature = Buffer.from(p256.sign(digest, operatorKey, { prehash: false, lowS: true }))
    return { bytes: Buffer.concat([body, signature]), operatorPublicKey: publicKey, nonce }
}
