/**
 * SimCrypto against the hal/crypto.ts contract: SHA-256, HMAC (RFC 4231), HKDF (RFC 5869),
 * AES-256-CCM sealing with typed failures, and signature verification that answers false
 * for malformed input and UnsupportedError for an unknown algorithm (GP-TM-03, GP-TM-34).
 */

import { describe, expect, it } from "vitest"
import { p256 } from "@noble/curves/nist.js"
import { SimCrypto } from "../../sim/crypto"
import { CryptoError, UnsupportedError } from "../../hal/errors"
import { SignatureAlgorithm } from "../../hal/crypto"

const crypto = new SimCrypto()
const hex = (s: string) => Buffer.from(s, "hex")

describe("SimCrypto hashing and key derivation", () => {
    it("computes SHA-256 over parts, one-shot and streaming alike", () => {
        const expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        const stream = crypto.createSha256()
        stream.update(Buffer.from("a"))
        stream.update(Buffer.from("bc"))

        expect(crypto.sha256([Buffer.from("ab"), Buffer.from("c")]).toString("hex")).toBe(expected)
        expect(stream.digest().toString("hex")).toBe(expected)
    })

    it("computes HMAC-SHA-256 (RFC 4231 test case 2)", () => {
        const mac = crypto.hmacSha256(Buffer.from("Jefe"), [
            Buffer.from("what do ya want "),
            Buffer.from("for nothing?"),
        ])

        expect(mac.toString("hex")).toBe(
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )
    })

    it("derives keys with HKDF-SHA-256 (RFC 5869 test case 1)", () => {
        const okm = crypto.hkdf(
            Buffer.alloc(22, 0x0b),
            hex("000102030405060708090a0b0c"),
            hex("f0f1f2f3f4f5f6f7f8f9"),
            42
        )

        expect(okm.toString("hex")).toBe(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        )
    })

    it("refuses HKDF lengths outside 1..8160 with CryptoError input", () => {
        expect(() => crypto.hkdf(Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(0), 0)).toThrow(
            CryptoError
        )
        expect(() => crypto.hkdf(Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(0), 8161)).toThrow(
            CryptoError
        )
    })
})

describe("SimCrypto AES-256-CCM", () => {
    const key = Buffer.alloc(32, 7)
    const nonce = Buffer.alloc(13, 9)
    const aad = Buffer.from("header")
    const plain = Buffer.from("secret settings")

    it("seals with a 16-byte tag and opens what it sealed", () => {
        const sealed = crypto.aeadSeal(key, nonce, aad, plain)

        expect(sealed.length).toBe(plain.length + 16)
        expect(crypto.aeadOpen(key, nonce, aad, sealed)).toEqual(plain)
    })

    it("GP-TM-34: refuses a changed ciphertext, tag, AAD, nonce or key (CryptoError auth)", () => {
        const sealed = crypto.aeadSeal(key, nonce, aad, plain)
        const flipFirst = Buffer.from(sealed)
        flipFirst[0] ^= 1
        const flipTag = Buffer.from(sealed)
        flipTag[sealed.length - 1] ^= 1
        const attempts: (() => Buffer)[] = [
            () => crypto.aeadOpen(key, nonce, aad, flipFirst),
            () => crypto.aeadOpen(key, nonce, aad, flipTag),
            () => crypto.aeadOpen(key, nonce, Buffer.from("headeR"), sealed),
            () => crypto.aeadOpen(key, Buffer.alloc(13, 8), aad, sealed),
            () => crypto.aeadOpen(Buffer.alloc(32, 6), nonce, aad, sealed),
            () => crypto.aeadOpen(key, nonce, aad, sealed.subarray(0, 15)),
        ]

        for (const attempt of attempts) {
            expect(attempt).toThrow(CryptoError)
            try {
                attempt()
            } catch (err) {
                expect((err as CryptoError).code).toBe("auth")
            }
        }
    })

    it("refuses a wrong key or nonce length with CryptoError input", () => {
        expect(() => crypto.aeadSeal(Buffer.alloc(16), nonce, aad, plain)).toThrow(/32 bytes/)
        expect(() => crypto.aeadSeal(key, Buffer.alloc(12), aad, plain)).toThrow(/13 bytes/)
    })
})

describe("SimCrypto.verify", () => {
    const secret = Buffer.alloc(32, 3)
    const publicKey = Buffer.from(p256.getPublicKey(secret, false))
    const message = Buffer.from("message")
    const signature = Buffer.from(p256.sign(message, secret))

    it("lists the three algorithms it verifies", () => {
        expect(crypto.verifiers().sort()).toEqual([
            "ecdsa-p256-sha256",
            "ed25519",
            "slh-dsa-sha2-128s",
        ])
    })

    it("accepts a valid ECDSA signature", async () => {
        expect(await crypto.verify("ecdsa-p256-sha256", publicKey, message, signature)).toBe(true)
    })

    it("answers false, never throws, for malformed input of every algorithm", async () => {
        const junk: unknown[] = [Buffer.alloc(0), Buffer.alloc(65, 4), "text", null, undefined, 7]
        for (const algorithm of crypto.verifiers()) {
            for (const value of junk) {
                const v = value as Buffer
                expect(await crypto.verify(algorithm, v, message, signature)).toBe(false)
                expect(await crypto.verify(algorithm, publicKey, v, signature)).toBe(false)
                expect(await crypto.verify(algorithm, publicKey, message, v)).toBe(false)
            }
        }
    })

    it("throws UnsupportedError for an unknown algorithm", async () => {
        const unknown = "rsa-2048" as SignatureAlgorithm

        await expect(crypto.verify(unknown, publicKey, message, signature)).rejects.toThrow(
            UnsupportedError
        )
    })
})
