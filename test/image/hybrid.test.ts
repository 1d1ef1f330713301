/**
 * Hybrid release identities (ECDSA P-256 + SLH-DSA-SHA2-128s, FIPS 205) in the image format:
 * the signature policy decides which signatures must verify, none can be stripped, and the
 * SLH-DSA check uses the pure external interface with an empty context (GP-TM-03, GP-TM-04).
 */

import { beforeAll, describe, expect, it } from "vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { verifyImage } from "../../boot/image"
import {
    decodeTrailer,
    encodeEntry,
    encodeTrailer,
    ENTRY_SIGNATURE,
    HEADER_SIZE,
    signedMessage,
} from "../../boot/image-format"
import { readU32 } from "../../boot/bytes"
import { Crypto } from "../../hal/crypto"
import { RestrictedCrypto } from "../../sim/crypto"
import { readPrivateKeyFile, ReleasePrivateKey } from "../../tools/keyfile"
import { bufferSource } from "../../tools/signer"
import { checkOf, crypto, identity, policyFor } from "./helpers"
import { loadHybrid } from "./fixtures/hybrid"

let key: ReleasePrivateKey
let image: Buffer

function trailerStart(bytes: Buffer): number {
    return HEADER_SIZE + readU32(bytes, 12)
}

/** The image with the trailer entries `keep` lets through, in order. */
function filterEntries(bytes: Buffer, keep: (type: number, value: Buffer) => Buffer | null) {
    const start = trailerStart(bytes)
    const trailer = decodeTrailer(bytes.subarray(start))
    const entries: Buffer[] = []
    for (const e of trailer.entries) {
        const value = keep(e.type, e.value)
        if (value !== null) entries.push(encodeEntry(e.type, value))
    }
    return Buffer.concat([bytes.subarray(0, start), encodeTrailer(entries)])
}

function withoutSignature(algorithmId: number): Buffer {
    return filterEntries(image, (type, value) =>
        type === ENTRY_SIGNATURE && value[0] === algorithmId ? null : value
    )
}

function withCorruptSignature(algorithmId: number): Buffer {
    return filterEntries(image, (type, value) => {
        if (type !== ENTRY_SIGNATURE || value[0] !== algorithmId) return value
        const bad = Buffer.from(value)
        bad[bad.length - 1] ^= 1
        return bad
    })
}

async function verifyWith(c: Crypto, bytes: Buffer, policy: "classical" | "hybrid" | "pq-only") {
    return verifyImage(c, bufferSource(bytes), policyFor(key, { signaturePolicy: policy }))
}

beforeAll(() => {
    const fixture = loadHybrid()
    key = fixture.a
    image = fixture.imageA
})

describe("hybrid images", () => {
    it("verify under the classical, hybrid and pq-only policies", async () => {
        for (const policy of ["classical", "hybrid", "pq-only"] as const) {
            expect((await verifyWith(crypto, image, policy)).header.version).toBe("1.2.3")
        }
    })

    it("GP-TM-04: refuse a stripped SLH-DSA signature under hybrid and pq-only", async () => {
        const stripped = withoutSignature(3)

        expect(await checkOf(verifyWith(crypto, stripped, "hybrid"))).toBe("signature-policy")
        expect(await checkOf(verifyWith(crypto, stripped, "pq-only"))).toBe("signature-policy")
    })

    it("GP-TM-04: refuse a stripped ECDSA signature under hybrid and classical", async () => {
        const stripped = withoutSignature(1)

        expect(await checkOf(verifyWith(crypto, stripped, "hybrid"))).toBe("signature-policy")
        expect(await checkOf(verifyWith(crypto, stripped, "classical"))).toBe("signature-policy")
    })

    it("GP-TM-04: refuse a corrupt signature the board can check, required or not", async () => {
        expect(await checkOf(verifyWith(crypto, withCorruptSignature(3), "classical"))).toBe(
            "signature"
        )
        expect(await checkOf(verifyWith(crypto, withCorruptSignature(1), "pq-only"))).toBe(
            "signature"
        )
    })

    it("pq-only on a board without ECDSA checks SLH-DSA alone", async () => {
        const board = new RestrictedCrypto(["slh-dsa-sha2-128s"])

        expect((await verifyWith(board, withCorruptSignature(1), "pq-only")).keySlot).toBe(0)
        expect(await checkOf(verifyWith(board, withCorruptSignature(3), "pq-only"))).toBe(
            "signature"
        )
    })

    it("GP-TM-03: refuse a hybrid image when only its ECDSA half is anchored", async () => {
        const ecdsaOnly = identity("ecdsa-p256-sha256", [key.keys[0]])
        const policy = policyFor(ecdsaOnly, { signaturePolicy: "classical" })

        expect(await checkOf(verifyImage(crypto, bufferSource(image), policy))).toBe(
            "key-unknown"
        )
    })
})

describe("SLH-DSA-SHA2-128s in SimCrypto", () => {
    it("verifies the pure FIPS 205 message M' = 0x00 || 0x00 || M (empty context)", async () => {
        const start = trailerStart(image)
        const trailer = decodeTrailer(image.subarray(start))
        const digest = crypto.sha256([image.subarray(0, start)])
        const message = signedMessage(digest, trailer.keyDigest)
        const sig = trailer.signatures.find((s) => s.algorithm === "slh-dsa-sha2-128s")!.signature
        const pub = key.keys[1].publicKey

        expect(await crypto.verify("slh-dsa-sha2-128s", pub, message, sig)).toBe(true)
        const prefixed = Buffer.concat([Buffer.alloc(2), message])
        expect(slh_dsa_sha2_128s.internal.verify(sig, prefixed, pub)).toBe(true)
        expect(await crypto.verify("slh-dsa-sha2-128s", pub, Buffer.from("other"), sig)).toBe(false)
        expect(await crypto.verify("slh-dsa-sha2-128s", pub, message, sig.subarray(1))).toBe(false)
    })
})

describe("hybrid key files", () => {
    it("GP-TM-35: a release.key with an ECDSA + SLH-DSA pair reads as a hybrid identity", () => {
        const dir = mkdtempSync(join(tmpdir(), "bulwark-hybrid-"))
        const path = join(dir, "release.key")
        const text = JSON.stringify({
            format: "bulwark-release-key",
            algorithm: "hybrid",
            keys: key.keys.map((k) => ({
                algorithm: k.algorithm,
                privateKey: k.privateKey.toString("hex"),
                publicKey: k.publicKey.toString("hex"),
            })),
        })
        writeFileSync(path, text, { mode: 0o600 })

        const read = readPrivateKeyFile(path)

        expect(read.algorithm).toBe("hybrid")
        expect(read.anchor).toEqual(key.anchor)
    })
})
