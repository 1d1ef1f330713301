/**
 * The portable SLH-DSA-SHA2-128s verifier (boot/slhdsa.ts, FIPS 205) against
 * @noble/post-quantum, differentially: the shared vectors of test/vectors/slhdsa-sha2-128s.json
 * (genuine signatures and attacks on every part of them) and random byte flips. Also its
 * contract: false and never a throw on malformed input, the HAL reached only through sha256,
 * and a yield every few hundred hashes as DeviceScript requires (GP-TM-04, GP-TM-34).
 */

import { readFileSync } from "node:fs"
import { join } from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { slhDsaVerify, slhDsaVerifyInternal, SlhDsaVerifyOptions } from "../../boot/slhdsa"
import { base2b, newAdrs, setTreeAddress } from "../../boot/slhdsa-hash"
import { Crypto } from "../../hal/crypto"
import { SimCrypto } from "../../sim/crypto"
import { caseInputs, nobleVerdict, VectorFile } from "../../tools/gen-slhdsa-vectors"

const VECTORS: VectorFile = JSON.parse(
    readFileSync(join(__dirname, "../vectors/slhdsa-sha2-128s.json"), "utf8")
)
const sim = new SimCrypto()

type Inputs = ReturnType<typeof caseInputs>

async function portableVerdict(inputs: Inputs, crypto: Crypto = sim, extra = {}) {
    const options: SlhDsaVerifyOptions = { context: inputs.context, ...extra }
    if (inputs.interface === "internal")
        return slhDsaVerifyInternal(
            crypto,
            inputs.publicKey,
            inputs.message,
            inputs.signature,
            options
        )
    return slhDsaVerify(crypto, inputs.publicKey, inputs.message, inputs.signature, options)
}

/** A Crypto that only has sha256 (any other call fails the test) and counts its calls. */
function sha256Only() {
    const counter = { calls: 0, sinceYield: 0, maxGap: 0 }
    const fail = () => {
        throw new Error("the verifier must use crypto.sha256 only")
    }
    const crypto: Crypto = {
        sha256: (parts) => {
            counter.calls++
            counter.sinceYield++
            counter.maxGap = Math.max(counter.maxGap, counter.sinceYield)
            return sim.sha256(parts)
        },
        createSha256: fail,
        hmacSha256: fail,
        hkdf: fail,
        aeadSeal: fail,
        aeadOpen: fail,
        verifiers: fail,
        verify: fail,
    }
    return { crypto, counter }
}

const genuine = caseInputs(VECTORS, VECTORS.cases[0])

describe("SLH-DSA-SHA2-128s portable verifier: differential against noble", () => {
    it("the vectors hold genuine signatures of both interfaces and attacks on all of them", () => {
        const interfaces = VECTORS.signatures.map((s) => s.interface)

        const valid = VECTORS.cases.filter((c) => c.valid).length

        expect(interfaces).toContain("pure")
        expect(interfaces).toContain("internal")
        expect(valid).toBeGreaterThanOrEqual(VECTORS.signatures.length)
        expect(VECTORS.cases.length - valid).toBeGreaterThanOrEqual(100)
    })

    it.each(VECTORS.cases.map((c) => [c.name, c] as const))(
        "GP-TM-04: %s: the verdict is the vector's and noble's",
        async (_name, vectorCase) => {
            const inputs = caseInputs(VECTORS, vectorCase)

            const portable = await portableVerdict(inputs)
            const noble = nobleVerdict(inputs)

            expect(noble).toBe(vectorCase.valid)
            expect(portable).toBe(vectorCase.valid)
        }
    )

    it("GP-TM-34: a signature with any one byte altered is refused by both verifiers", async () => {
        const base = caseInputs(VECTORS, VECTORS.cases[2])
        const flip = fc.record({
            position: fc.integer({ min: 0, max: base.signature.length - 1 }),
            mask: fc.integer({ min: 1, max: 255 }),
        })

        await fc.assert(
            fc.asyncProperty(flip, async ({ position, mask }) => {
                const signature = Buffer.from(base.signature)
                signature[position] ^= mask
                const attacked = { ...base, signature }

                const portable = await portableVerdict(attacked)

                expect(portable).toBe(false)
                expect(nobleVerdict(attacked)).toBe(false)
            }),
            { numRuns: 24, seed: 205 }
        )
    })
})

describe("SLH-DSA-SHA2-128s portable verifier: contract", () => {
    it("GP-TM-34: returns false, never throws, for inputs of a wrong type or length", async () => {
        const pk = genuine.publicKey
        const sig = genuine.signature
        const msg = genuine.message
        const junk: unknown[] = [null, undefined, 7, "0011", {}, [1, 2]]

        const verdicts: boolean[] = []
        for (const bad of junk) {
            verdicts.push(await slhDsaVerify(sim, bad as Buffer, msg, sig))
            verdicts.push(await slhDsaVerify(sim, pk, bad as Buffer, sig))
            verdicts.push(await slhDsaVerify(sim, pk, msg, bad as Buffer))
            if (bad !== undefined)
                verdicts.push(await slhDsaVerify(sim, pk, msg, sig, { context: bad as Buffer }))
            verdicts.push(await slhDsaVerifyInternal(sim, pk, bad as Buffer, sig))
        }
        verdicts.push(await slhDsaVerify(sim, pk, msg, sig, { context: Buffer.alloc(256) }))
        verdicts.push(await slhDsaVerify(sim, pk, msg, Buffer.concat([sig, Buffer.alloc(1)])))

        expect(verdicts.every((v) => v === false)).toBe(true)
        expect(await slhDsaVerify(sim, pk, msg, sig)).toBe(true)
    })

    it("reaches the HAL only through crypto.sha256 and reports every call in stats", async () => {
        const { crypto, counter } = sha256Only()
        const stats = { sha256Calls: 0, yields: 0 }

        const valid = await portableVerdict(genuine, crypto, { stats })

        expect(valid).toBe(true)
        expect(stats.sha256Calls).toBe(counter.calls)
        // 2 for H_msg, 14 x 13 + 1 for FORS, then per layer: the chains, T_len and 9 for XMSS.
        expect(counter.calls).toBeGreaterThanOrEqual(2 + 183 + 7 * 10)
        expect(counter.calls).toBeLessThanOrEqual(2 + 183 + 7 * (35 * 15 + 10))
    })

    it("adds to stats across verifications and hashes nothing for a malformed input", async () => {
        const stats = { sha256Calls: 0, yields: 0 }

        await portableVerdict(genuine, sim, { stats })
        const one = stats.sha256Calls
        await portableVerdict(genuine, sim, { stats })
        await slhDsaVerify(sim, genuine.publicKey, genuine.message, Buffer.alloc(7855), { stats })

        expect(stats.sha256Calls).toBe(2 * one)
    })

    it("awaits the injected yield point at least every yieldEvery + 15 hashes", async () => {
        const { crypto, counter } = sha256Only()
        let yields = 0
        const yieldNow = async () => {
            yields++
            counter.sinceYield = 0
        }
        const stats = { sha256Calls: 0, yields: 0 }
        const options = { yieldEvery: 64, yieldNow, stats }

        const first = await portableVerdict(genuine, crypto, options)
        const second = await portableVerdict(genuine, crypto, options)

        // Back to back too: the tail of one verification and the head of the next are apart.
        expect(first && second).toBe(true)
        expect(counter.maxGap).toBeLessThanOrEqual(64 + 15)
        expect(yields).toBe(stats.yields)
        expect(yields).toBeGreaterThanOrEqual(Math.floor(counter.calls / (64 + 15)))
    })
})

describe("SLH-DSA-SHA2-128s building blocks", () => {
    it("base_2^b (FIPS 205 Algorithm 4) reads b-bit digits most significant first", () => {
        const x = Buffer.from("a5f00f1234", "hex")

        expect(base2b(x, 0, 4, 6)).toEqual([0xa, 0x5, 0xf, 0x0, 0x0, 0xf])
        expect(base2b(x, 0, 12, 3)).toEqual([0xa5f, 0x00f, 0x123])
        expect(base2b(x, 1, 8, 2)).toEqual([0xf0, 0x0f])
    })

    it("the 54-bit tree address is written exactly from its two 27-bit halves", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 0, max: 2 ** 27 - 1 }),
                fc.integer({ min: 0, max: 2 ** 27 - 1 }),
                (hi, lo) => {
                    const adrs = newAdrs()

                    setTreeAddress(adrs, hi, lo)

                    const expected = (BigInt(hi) << 27n) + BigInt(lo)
                    expect(adrs.readBigUInt64BE(1)).toBe(expected)
                }
            ),
            { numRuns: 200, seed: 54 }
        )
    })
})
