/**
 * Attacks on hybrid (ECDSA P-256 + SLH-DSA-SHA2-128s) images and the signature policy
 * (GP-TM-03, GP-TM-04, GP-TM-34): stripped, duplicated and swapped halves, halves of two
 * identities, revoked anchors, and boards that cannot verify ECDSA, whose ECDSA verdict is
 * "unverifiable" and never "passed". Signed fixtures: test/image/fixtures/hybrid.json.
 */

import { beforeAll, describe, expect, it } from "vitest"
import { verifyImage, VerifiedImage, VerifyPolicy } from "../../boot/image"
import {
    algorithmValue,
    encodeEntry,
    ENTRY_KEY_DIGEST,
    ENTRY_PUBLIC_KEY,
    ENTRY_SIGNATURE,
    ImageError,
} from "../../boot/image-format"
import { ALG_ECDSA_P256, ALG_SLH_DSA_SHA2_128S } from "../../boot/anchor"
import { SignaturePolicy } from "../../boot/profile"
import { Crypto } from "../../hal/crypto"
import { RestrictedCrypto } from "../../sim/crypto"
import { ReleasePrivateKey, releaseAnchor } from "../../tools/keyfile"
import { bufferSource } from "../../tools/signer"
import { loadHybrid } from "./fixtures/hybrid"
import {
    checkOf,
    crypto,
    entriesOf,
    policyFor,
    signedImage,
    slots,
    testKey,
    withTrailer,
} from "./helpers"

const ECDSA = ALG_ECDSA_P256
const SLH = ALG_SLH_DSA_SHA2_128S
/** A DeviceScript-like board: native SHA-256, SLH-DSA verifiable, no elliptic curves. */
const noEcdsaBoard = new RestrictedCrypto(["slh-dsa-sha2-128s"])

let a: ReleasePrivateKey
let b: ReleasePrivateKey
let imageA: Buffer
let imageB: Buffer

beforeAll(() => {
    const fixture = loadHybrid()
    a = fixture.a
    b = fixture.b
    imageA = fixture.imageA
    imageB = fixture.imageB
})

function entryType(entry: Buffer): number {
    return entry.readUInt16BE(0)
}

function isEntry(entry: Buffer, type: number, algorithmId: number): boolean {
    return entryType(entry) === type && entry[4] === algorithmId
}

function entryOf(image: Buffer, type: number, algorithmId: number): Buffer {
    const found = entriesOf(image).find((e) => isEntry(e, type, algorithmId))
    if (found === undefined) throw new Error("fixture lacks the entry")
    return found
}

/** imageA without the entries of `type` and algorithm. */
function without(image: Buffer, type: number, algorithmId: number): Buffer {
    return withTrailer(image, entriesOf(image).filter((e) => !isEntry(e, type, algorithmId)))
}

/** imageA with its entry of `type` and algorithm replaced by `entry`. */
function replaced(image: Buffer, type: number, algorithmId: number, entry: Buffer): Buffer {
    return withTrailer(
        image,
        entriesOf(image).map((e) => (isEntry(e, type, algorithmId) ? entry : e))
    )
}

function corrupt(image: Buffer, algorithmId: number): Buffer {
    const entry = Buffer.from(entryOf(image, ENTRY_SIGNATURE, algorithmId))
    entry[entry.length - 1] ^= 0x01
    return replaced(image, ENTRY_SIGNATURE, algorithmId, entry)
}

function verify(
    bytes: Buffer,
    signaturePolicy: SignaturePolicy,
    extra: Partial<VerifyPolicy> = {},
    board: Crypto = crypto
): Promise<VerifiedImage> {
    return verifyImage(board, bufferSource(bytes), policyFor(a, { signaturePolicy, ...extra }))
}

/** The ImageError a promise rejects with (fails the test if it resolves). */
async function refusal(promise: Promise<unknown>): Promise<ImageError> {
    try {
        await promise
    } catch (err) {
        if (err instanceof ImageError) return err
        throw err
    }
    throw new Error("accepted")
}

function verdicts(reports: { algorithm: string; verdict: string }[] | null) {
    return (reports ?? []).map((r) => `${r.algorithm}:${r.verdict}`)
}

describe("stripped halves", () => {
    it("GP-TM-04: a hybrid board refuses an image whose PQ half was stripped", async () => {
        const stripped = without(imageA, ENTRY_SIGNATURE, SLH)

        expect(await checkOf(verify(stripped, "hybrid"))).toBe("signature-policy")
        expect(await checkOf(verify(stripped, "pq-only"))).toBe("signature-policy")
        expect(await checkOf(verify(stripped, "hybrid", {}, noEcdsaBoard))).toBe(
            "signature-policy"
        )
    })

    it("GP-TM-04: stripping the SLH-DSA public key too breaks the anchored identity", async () => {
        const stripped = without(without(imageA, ENTRY_SIGNATURE, SLH), ENTRY_PUBLIC_KEY, SLH)

        for (const policy of ["classical", "hybrid", "pq-only"] as const)
            expect(await checkOf(verify(stripped, policy))).toBe("public-key")
    })

    it("GP-TM-04: a hybrid or classical board refuses a stripped classical half", async () => {
        const stripped = without(imageA, ENTRY_SIGNATURE, ECDSA)

        expect(await checkOf(verify(stripped, "hybrid"))).toBe("signature-policy")
        expect(await checkOf(verify(stripped, "classical"))).toBe("signature-policy")
        const rule = { acceptUnverifiableEcdsa: true }
        expect(await checkOf(verify(stripped, "hybrid", rule, noEcdsaBoard))).toBe(
            "signature-policy"
        )
    })

    it("GP-TM-34: classical takes a hybrid image minus SLH-DSA; pq-only minus ECDSA", async () => {
        const noPq = await verify(without(imageA, ENTRY_SIGNATURE, SLH), "classical")
        const noClassical = await verify(without(imageA, ENTRY_SIGNATURE, ECDSA), "pq-only")

        expect(verdicts(noPq.signatures)).toEqual(["ecdsa-p256-sha256:passed"])
        expect(verdicts(noClassical.signatures)).toEqual(["slh-dsa-sha2-128s:passed"])
    })
})

describe("duplicated halves and keys outside the anchor", () => {
    it("GP-TM-04: refuses a duplicated SLH-DSA or ECDSA signature", async () => {
        for (const id of [SLH, ECDSA]) {
            const sig = entryOf(imageA, ENTRY_SIGNATURE, id)
            const doubled = withTrailer(imageA, [...entriesOf(imageA), sig])

            expect(await checkOf(verify(doubled, "hybrid"))).toBe("entry-duplicate")
        }
    })

    it("GP-TM-04: refuses a second SLH-DSA signature from another identity", async () => {
        const other = entryOf(imageB, ENTRY_SIGNATURE, SLH)

        const doubled = withTrailer(imageA, [...entriesOf(imageA), other])

        expect(await checkOf(verify(doubled, "pq-only"))).toBe("entry-duplicate")
    })

    it("GP-TM-04: refuses a duplicated public key", async () => {
        const key = entryOf(imageA, ENTRY_PUBLIC_KEY, SLH)

        const doubled = withTrailer(imageA, [key, ...entriesOf(imageA)])

        expect(await checkOf(verify(doubled, "hybrid"))).toBe("entry-duplicate")
    })

    it("GP-TM-03: refuses a signature whose algorithm has no key in the anchor", async () => {
        const stray = encodeEntry(ENTRY_SIGNATURE, algorithmValue("ed25519", Buffer.alloc(64, 7)))

        const extended = withTrailer(imageA, [...entriesOf(imageA), stray])

        for (const policy of ["classical", "hybrid", "pq-only"] as const)
            expect(await checkOf(verify(extended, policy))).toBe("signature")
    })
})

describe("halves of two identities", () => {
    const both = () => ({ anchors: slots(a.anchor, b.anchor) })

    it("GP-TM-04: refuses A's image carrying B's SLH-DSA signature, both anchored", async () => {
        const mixed = replaced(imageA, ENTRY_SIGNATURE, SLH, entryOf(imageB, ENTRY_SIGNATURE, SLH))

        const err = await refusal(verify(mixed, "hybrid", both()))

        expect(err.check).toBe("signature")
        expect(verdicts(err.signatures)).toEqual([
            "ecdsa-p256-sha256:passed",
            "slh-dsa-sha2-128s:failed",
        ])
    })

    it("GP-TM-04: refuses A's image carrying B's ECDSA signature, both anchored", async () => {
        const theirs = entryOf(imageB, ENTRY_SIGNATURE, ECDSA)
        const mixed = replaced(imageA, ENTRY_SIGNATURE, ECDSA, theirs)

        expect(await checkOf(verify(mixed, "hybrid", both()))).toBe("signature")
        expect(await checkOf(verify(mixed, "classical", both()))).toBe("signature")
    })

    it("GP-TM-03: refuses B's SLH-DSA key and signature under A's key digest", async () => {
        let mixed = replaced(imageA, ENTRY_SIGNATURE, SLH, entryOf(imageB, ENTRY_SIGNATURE, SLH))
        mixed = replaced(mixed, ENTRY_PUBLIC_KEY, SLH, entryOf(imageB, ENTRY_PUBLIC_KEY, SLH))

        expect(await checkOf(verify(mixed, "hybrid", both()))).toBe("public-key")
        expect(await checkOf(verify(mixed, "pq-only", both()))).toBe("public-key")
    })

    it("GP-TM-03: refuses an identity stitched from A's ECDSA and B's SLH-DSA halves", async () => {
        const stitched = releaseAnchor([
            { algorithm: "ecdsa-p256-sha256", key: a.keys[0].publicKey },
            { algorithm: "slh-dsa-sha2-128s", key: b.keys[1].publicKey },
        ])
        let mixed = replaced(imageA, ENTRY_SIGNATURE, SLH, entryOf(imageB, ENTRY_SIGNATURE, SLH))
        mixed = replaced(mixed, ENTRY_PUBLIC_KEY, SLH, entryOf(imageB, ENTRY_PUBLIC_KEY, SLH))
        mixed = withTrailer(
            mixed,
            entriesOf(mixed).map((e) =>
                entryType(e) === ENTRY_KEY_DIGEST ? encodeEntry(ENTRY_KEY_DIGEST, stitched) : e
            )
        )

        expect(await checkOf(verify(mixed, "hybrid", both()))).toBe("key-unknown")
    })
})

describe("revoked anchors", () => {
    it("GP-TM-03: refuses a hybrid image whose anchor is revoked, under every policy", async () => {
        const revoked = { anchors: [{ digest: a.anchor, revoked: true }, ...slots(b.anchor)] }

        for (const policy of ["classical", "hybrid", "pq-only"] as const) {
            expect(await checkOf(verify(imageA, policy, revoked))).toBe("key-revoked")
            expect(await checkOf(verify(imageA, policy, revoked, noEcdsaBoard))).toBe(
                "key-revoked"
            )
        }
        expect((await verify(imageB, "hybrid", revoked)).keySlot).toBe(1)
    })

    it("GP-TM-03: a revoked slot wins over the same anchor unrevoked in another slot", async () => {
        const anchors = [
            { digest: a.anchor, revoked: false },
            { digest: a.anchor, revoked: true },
            { digest: null, revoked: false },
        ]

        expect(await checkOf(verify(imageA, "hybrid", { anchors }))).toBe("key-revoked")
    })
})

describe("pq-only boards", () => {
    it("GP-TM-34: a pq-only board refuses a classical-only image", async () => {
        const key = testKey()
        const classical = await signedImage({ key })
        const policy = policyFor(key, { signaturePolicy: "pq-only" })

        expect(await checkOf(verifyImage(crypto, bufferSource(classical), policy))).toBe(
            "signature-policy"
        )
        expect(await checkOf(verifyImage(noEcdsaBoard, bufferSource(classical), policy))).toBe(
            "signature-policy"
        )
    })
})

describe("boards that cannot verify ECDSA", () => {
    it("GP-TM-36: report the ECDSA half unverifiable, never passed, under pq-only", async () => {
        const genuine = await verify(imageA, "pq-only", {}, noEcdsaBoard)
        const damaged = await verify(corrupt(imageA, ECDSA), "pq-only", {}, noEcdsaBoard)

        for (const result of [genuine, damaged])
            expect(result.signatures).toEqual([
                { algorithm: "ecdsa-p256-sha256", verdict: "unverifiable", required: false },
                { algorithm: "slh-dsa-sha2-128s", verdict: "passed", required: true },
            ])
    })

    it("GP-TM-36: refuse a hybrid image under hybrid without the device-target rule", async () => {
        const err = await refusal(verify(imageA, "hybrid", {}, noEcdsaBoard))

        expect(err.check).toBe("signature-unverifiable")
        expect(verdicts(err.signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])
    })

    it("GP-TM-36: accept it under the device-target rule, ECDSA left unverifiable", async () => {
        const rule = { acceptUnverifiableEcdsa: true }

        const result = await verify(imageA, "hybrid", rule, noEcdsaBoard)

        expect(result.signatures).toEqual([
            { algorithm: "ecdsa-p256-sha256", verdict: "unverifiable", required: true },
            { algorithm: "slh-dsa-sha2-128s", verdict: "passed", required: true },
        ])
    })

    it("GP-TM-04: refuse under the rule when the SLH-DSA half fails", async () => {
        const rule = { acceptUnverifiableEcdsa: true }

        const err = await refusal(verify(corrupt(imageA, SLH), "hybrid", rule, noEcdsaBoard))

        expect(err.check).toBe("signature")
        expect(verdicts(err.signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:failed",
        ])
    })

    it("GP-TM-04: the rule never applies under classical nor where ECDSA verifies", async () => {
        const rule = { acceptUnverifiableEcdsa: true }

        expect(await checkOf(verify(imageA, "classical", rule, noEcdsaBoard))).toBe(
            "signature-unverifiable"
        )
        expect(await checkOf(verify(corrupt(imageA, ECDSA), "hybrid", rule))).toBe("signature")
        expect(verdicts((await verify(imageA, "hybrid", rule)).signatures)).toEqual([
            "ecdsa-p256-sha256:passed",
            "slh-dsa-sha2-128s:passed",
        ])
    })

    it("GP-TM-04: a board with no verifier at all accepts nothing", async () => {
        const none = new RestrictedCrypto([])

        for (const policy of ["classical", "hybrid", "pq-only"] as const)
            expect(
                await checkOf(verify(imageA, policy, { acceptUnverifiableEcdsa: true }, none))
            ).toBe("signature-unverifiable")
    })
})

describe("verdicts across boards, policies and damaged halves", () => {
    const boards: [string, Crypto][] = [
        ["all", crypto],
        ["slh-only", noEcdsaBoard],
        ["ecdsa-only", new RestrictedCrypto(["ecdsa-p256-sha256"])],
        ["none", new RestrictedCrypto([])],
    ]
    const variants: [string, () => Buffer][] = [
        ["genuine", () => imageA],
        ["no-ecdsa", () => without(imageA, ENTRY_SIGNATURE, ECDSA)],
        ["no-slh", () => without(imageA, ENTRY_SIGNATURE, SLH)],
        ["bad-ecdsa", () => corrupt(imageA, ECDSA)],
        ["bad-slh", () => corrupt(imageA, SLH)],
    ]
    const required: Record<SignaturePolicy, string[]> = {
        classical: ["ecdsa-p256-sha256"],
        hybrid: ["ecdsa-p256-sha256", "slh-dsa-sha2-128s"],
        "pq-only": ["slh-dsa-sha2-128s"],
    }

    it("GP-TM-04/34: no unverifiable pass, no missing or failed half accepted", async () => {
        let accepted = 0
        let refused = 0
        for (const [, board] of boards)
            for (const [name, make] of variants)
                for (const policy of ["classical", "hybrid", "pq-only"] as const)
                    for (const rule of [false, true]) {
                        const bytes = make()
                        const opts = { acceptUnverifiableEcdsa: rule }
                        let reports
                        try {
                            reports = (
                                await verify(bytes, policy, opts, board)
                            ).signatures
                        } catch (err) {
                            if (!(err instanceof ImageError)) throw err
                            refused++
                            for (const r of err.signatures ?? [])
                                if (r.verdict === "passed")
                                    expect(board.verifiers()).toContain(r.algorithm)
                            continue
                        }
                        accepted++
                        const where = `${name} ${policy} rule=${rule} [${board.verifiers()}]`
                        for (const r of reports) {
                            expect(r.verdict, where).not.toBe("failed")
                            if (r.verdict === "passed")
                                expect(board.verifiers(), where).toContain(r.algorithm)
                        }
                        for (const alg of required[policy]) {
                            const r = reports.find((x) => x.algorithm === alg)
                            expect(r, where).toBeDefined()
                            const excused =
                                rule && policy === "hybrid" && alg === "ecdsa-p256-sha256"
                            if (!excused) expect(r!.verdict, where).toBe("passed")
                        }
                        expect(reports.some((x) => x.verdict === "passed"), where).toBe(true)
                    }
        expect(accepted).toBeGreaterThan(10)
        expect(refused).toBeGreaterThan(60)
    })
})
