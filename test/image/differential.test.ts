/**
 * Differential tests of the two signature back-ends of sim/crypto.ts (Node/OpenSSL and
 * noble): they agree on valid, mutated and non-canonical signatures (high-S, r or s out of
 * range, wrong lengths, bad keys), so whichever SimCrypto uses, the verdict is the same.
 */

import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import {
    verifyEcdsaNode,
    verifyEcdsaNoble,
    verifyEd25519Node,
    verifyEd25519Noble,
} from "../../sim/crypto"

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
const L = 2n ** 252n + 27742317777372353535851937790883648493n

const ecSecret = Buffer.alloc(32, 0x5a)
const ecPublic = Buffer.from(p256.getPublicKey(ecSecret, false))
const edSecret = Buffer.alloc(32, 0x6b)
const edPublic = Buffer.from(ed25519.getPublicKey(edSecret))

function toBig(bytes: Buffer): bigint {
    return BigInt("0x" + (bytes.length ? bytes.toString("hex") : "0"))
}

function fromBig(value: bigint, length: number): Buffer {
    return Buffer.from(value.toString(16).padStart(length * 2, "0"), "hex")
}

function rs(r: bigint, s: bigint): Buffer {
    return Buffer.concat([fromBig(r, 32), fromBig(s, 32)])
}

function ecdsaVerdicts(key: Buffer, msg: Buffer, sig: Buffer): [boolean, boolean] {
    return [verifyEcdsaNode(key, msg, sig), verifyEcdsaNoble(key, msg, sig)]
}

function edVerdicts(key: Buffer, msg: Buffer, sig: Buffer): [boolean, boolean] {
    return [verifyEd25519Node(key, msg, sig), verifyEd25519Noble(key, msg, sig)]
}

describe("ECDSA P-256: Node and noble agree", () => {
    const msg = Buffer.from("bulwark differential")
    const sig = Buffer.from(p256.sign(msg, ecSecret, { lowS: true }))
    const r = toBig(sig.subarray(0, 32))
    const s = toBig(sig.subarray(32))

    it("both accept a valid low-S signature", () => {
        expect(ecdsaVerdicts(ecPublic, msg, sig)).toEqual([true, true])
    })

    it("both accept its high-S twin (n - s), the documented choice", () => {
        expect(ecdsaVerdicts(ecPublic, msg, rs(r, N - s))).toEqual([true, true])
    })

    it("both refuse r or s of zero, equal to n or above n", () => {
        const bad = [rs(0n, s), rs(r, 0n), rs(N, s), rs(r, N), rs(r + N, s), rs(r, s + N)]
        for (const candidate of bad) {
            expect(ecdsaVerdicts(ecPublic, msg, candidate)).toEqual([false, false])
        }
    })

    it("both refuse wrong signature lengths and a DER encoding", () => {
        const der = Buffer.from(p256.sign(msg, ecSecret, { format: "der" }))
        const bad = [Buffer.alloc(0), sig.subarray(0, 63), Buffer.concat([sig, Buffer.alloc(1)]),
            Buffer.concat([Buffer.alloc(1), sig]), der]
        for (const candidate of bad) {
            expect(ecdsaVerdicts(ecPublic, msg, candidate)).toEqual([false, false])
        }
    })

    it("both refuse compressed, truncated, off-curve and infinity public keys", () => {
        const offCurve = Buffer.from(ecPublic)
        offCurve[64] ^= 1
        const keys = [Buffer.from(p256.getPublicKey(ecSecret, true)), ecPublic.subarray(0, 64),
            offCurve, Buffer.concat([Buffer.from([4]), Buffer.alloc(64)]), Buffer.alloc(65)]
        for (const key of keys) expect(ecdsaVerdicts(key, msg, sig)).toEqual([false, false])
    })

    it("agree on random messages and random single-byte mutations", () => {
        fc.assert(
            fc.property(
                fc.uint8Array({ maxLength: 64 }),
                fc.nat(64 + 65 - 1),
                fc.integer({ min: 1, max: 255 }),
                (raw, position, mask) => {
                    const m = Buffer.from(raw)
                    const good = Buffer.from(p256.sign(m, ecSecret))
                    const [a, b] = ecdsaVerdicts(ecPublic, m, good)
                    if (!a || !b) return false
                    const badSig = Buffer.from(good)
                    const badKey = Buffer.from(ecPublic)
                    if (position < 64) badSig[position] ^= mask
                    else badKey[position - 64] ^= mask
                    const [x, y] = ecdsaVerdicts(badKey, m, badSig)
                    return x === y && x === false
                }
            ),
            { numRuns: 150 }
        )
    })
})

describe("Ed25519: Node and noble agree", () => {
    const msg = Buffer.from("bulwark differential")
    const sig = Buffer.from(ed25519.sign(msg, edSecret))
    const S = toBig(Buffer.from(sig.subarray(32)).reverse())

    function withS(value: bigint): Buffer {
        return Buffer.concat([sig.subarray(0, 32), fromBig(value, 32).reverse()])
    }

    it("both accept a valid signature", () => {
        expect(edVerdicts(edPublic, msg, sig)).toEqual([true, true])
    })

    it("both refuse a non-canonical S (S + L), which a malleable verifier would take", () => {
        expect(edVerdicts(edPublic, msg, withS(S + L))).toEqual([false, false])
    })

    it("both refuse wrong lengths and wrong keys", () => {
        const bad: [Buffer, Buffer][] = [
            [edPublic, sig.subarray(0, 63)],
            [edPublic, Buffer.concat([sig, Buffer.alloc(1)])],
            [edPublic.subarray(0, 31), sig],
            [Buffer.alloc(32), sig],
            [Buffer.alloc(32, 0xff), sig],
        ]
        for (const [key, candidate] of bad) {
            expect(edVerdicts(key, msg, candidate)).toEqual([false, false])
        }
    })

    it("agree on random messages and random single-byte mutations", () => {
        fc.assert(
            fc.property(
                fc.uint8Array({ maxLength: 64 }),
                fc.nat(64 + 32 - 1),
                fc.integer({ min: 1, max: 255 }),
                (raw, position, mask) => {
                    const m = Buffer.from(raw)
                    const good = Buffer.from(ed25519.sign(m, edSecret))
                    const [a, b] = edVerdicts(edPublic, m, good)
                    if (!a || !b) return false
                    const badSig = Buffer.from(good)
                    const badKey = Buffer.from(edPublic)
                    if (position < 64) badSig[position] ^= mask
                    else badKey[position - 64] ^= mask
                    const [x, y] = edVerdicts(badKey, m, badSig)
                    return x === y && x === false
                }
            ),
            { numRuns: 150 }
        )
    })
})
