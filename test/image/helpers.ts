/**
 * Shared fixtures of the image tests: deterministic release identities, signed images and
 * verify policies, so each test states only what it changes.
 */

import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { SignatureAlgorithm } from "../../hal/crypto"
import { OtpKeySlot } from "../../hal/otp"
import { VerifyPolicy } from "../../boot/image"
import { decodeTrailer, encodeEntry, encodeTrailer, HEADER_SIZE } from "../../boot/image-format"
import { readU32 } from "../../boot/bytes"
import { SimCrypto } from "../../sim/crypto"
import { PrivateKeyEntry, ReleasePrivateKey, releaseAnchor } from "../../tools/keyfile"
import { buildSignedImage } from "../../tools/signer"

export const crypto = new SimCrypto()
export const DEVICE_CLASS = "bulwark-demo-sensor"

function secret(fill: number): Buffer {
    const sk = Buffer.alloc(32, fill)
    sk[0] = 0x01
    return sk
}

function publicKeyOf(algorithm: SignatureAlgorithm, sk: Buffer): Buffer {
    if (algorithm === "ecdsa-p256-sha256") return Buffer.from(p256.getPublicKey(sk, false))
    return Buffer.from(ed25519.getPublicKey(sk))
}

/** A fixed single-key identity; `fill` picks one of many distinct keys. */
export function testKey(
    algorithm: "ecdsa-p256-sha256" | "ed25519" = "ecdsa-p256-sha256",
    fill = 0x11
): ReleasePrivateKey {
    const sk = secret(fill)
    const entry: PrivateKeyEntry = {
        algorithm: algorithm,
        privateKey: sk,
        publicKey: publicKeyOf(algorithm, sk),
    }
    return identity(algorithm, [entry])
}

export function identity(
    algorithm: ReleasePrivateKey["algorithm"],
    keys: PrivateKeyEntry[]
): ReleasePrivateKey {
    const anchor = releaseAnchor(keys.map((k) => ({ algorithm: k.algorithm, key: k.publicKey })))
    return { algorithm: algorithm, keys: keys, anchor: anchor }
}

export function payloadOf(size: number): Buffer {
    const out = Buffer.alloc(size)
    for (let i = 0; i < size; i++) out[i] = (i * 131 + 7) & 0xff
    return out
}

export async function signedImage(
    overrides: Partial<{
        payload: Buffer
        version: string
        counter: number
        deviceClass: string
        key: ReleasePrivateKey
    }> = {}
): Promise<Buffer> {
    return buildSignedImage({
        payload: overrides.payload ?? payloadOf(64),
        version: overrides.version ?? "1.2.3",
        counter: overrides.counter ?? 5,
        deviceClass: overrides.deviceClass ?? DEVICE_CLASS,
        key: overrides.key ?? testKey(),
    })
}

export function slots(...anchors: (Buffer | null)[]): OtpKeySlot[] {
    const out: OtpKeySlot[] = anchors.map((d) => ({ digest: d, revoked: false }))
    while (out.length < 3) out.push({ digest: null, revoked: false })
    return out
}

export function policyFor(
    key: ReleasePrivateKey,
    overrides: Partial<VerifyPolicy> = {}
): VerifyPolicy {
    return {
        deviceClass: DEVICE_CLASS,
        minSecurityCounter: 5,
        anchors: slots(key.anchor),
        signaturePolicy: "classical",
        exact: true,
        keepPayload: false,
        ...overrides,
    }
}

/** The `check` of the ImageError a promise rejects with; "accepted" if it resolves. */
export async function checkOf(promise: Promise<unknown>): Promise<string> {
    try {
        await promise
        return "accepted"
    } catch (err) {
        const check = (err as { check?: unknown }).check
        if (err instanceof Error && err.name === "ImageError" && typeof check === "string")
            return check
        throw err
    }
}

export function trailerOffset(image: Buffer): number {
    return HEADER_SIZE + readU32(image, 12)
}

/** The image with its trailer replaced by one made of `entries`. */
export function withTrailer(image: Buffer, entries: Buffer[]): Buffer {
    return Buffer.concat([image.subarray(0, trailerOffset(image)), encodeTrailer(entries)])
}

export function entriesOf(image: Buffer): Buffer[] {
    const trailer = decodeTrailer(image.subarray(trailerOffset(image)))
    return trailer.entries.map((e) => encodeEntry(e.type, e.value))
}
