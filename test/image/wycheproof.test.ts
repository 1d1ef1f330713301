/**
 * Project Wycheproof vectors (test/vectors/wycheproof/, C2SP/wycheproof, Apache-2.0) through
 * every signature verifier of the sim: SimCrypto.verify and both ECDSA and Ed25519 back-ends.
 * Every "valid" case is accepted, every "invalid" one refused (GP-TM-04, GP-TM-34).
 */

import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
    SimCrypto,
    verifyEcdsaNode,
    verifyEcdsaNoble,
    verifyEd25519Node,
    verifyEd25519Noble,
} from "../../sim/crypto"
import { SignatureAlgorithm } from "../../hal/crypto"

interface Case {
    tcId: number
    comment: string
    msg: string
    sig: string
    result: "valid" | "invalid" | "acceptable"
}

interface Group {
    publicKey: { uncompressed?: string; pk?: string }
    tests: Case[]
}

type Verifier = (key: Buffer, message: Buffer, signature: Buffer) => boolean | Promise<boolean>

const DIR = join(__dirname, "..", "vectors", "wycheproof")
const crypto = new SimCrypto()

function load(file: string): Group[] {
    return JSON.parse(readFileSync(join(DIR, file), "utf8")).testGroups
}

/** Runs every case; returns the ids whose outcome differs from the vector's result. */
async function disagreements(groups: Group[], verifier: Verifier): Promise<string[]> {
    const wrong: string[] = []
    for (const group of groups) {
        const key = Buffer.from(group.publicKey.uncompressed ?? group.publicKey.pk ?? "", "hex")
        for (const t of group.tests) {
            const got = await verifier(key, Buffer.from(t.msg, "hex"), Buffer.from(t.sig, "hex"))
            if (t.result === "acceptable") wrong.push(`${t.tcId} acceptable: decide and document`)
            else if (got !== (t.result === "valid")) wrong.push(`${t.tcId} ${t.comment}`)
        }
    }
    return wrong
}

function viaSimCrypto(algorithm: SignatureAlgorithm): Verifier {
    return (key, message, signature) => crypto.verify(algorithm, key, message, signature)
}

const SUITES: [string, string, SignatureAlgorithm, Verifier, Verifier][] = [
    [
        "ECDSA P-256 SHA-256 (P1363)",
        "ecdsa_secp256r1_sha256_p1363_test.json",
        "ecdsa-p256-sha256",
        verifyEcdsaNode,
        verifyEcdsaNoble,
    ],
    ["Ed25519", "ed25519_test.json", "ed25519", verifyEd25519Node, verifyEd25519Noble],
]

for (const [name, file, algorithm, node, noble] of SUITES) {
    describe(`Wycheproof ${name}`, () => {
        const groups = load(file)

        it("has cases of both outcomes", () => {
            const results = groups.flatMap((g) => g.tests.map((t) => t.result))

            expect(results.filter((r) => r === "valid").length).toBeGreaterThan(50)
            expect(results.filter((r) => r === "invalid").length).toBeGreaterThan(50)
        })

        it("GP-TM-34: SimCrypto.verify accepts every valid, refuses every invalid", async () => {
            expect(await disagreements(groups, viaSimCrypto(algorithm))).toEqual([])
        })

        it("the Node (OpenSSL) back-end agrees with every vector", async () => {
            expect(await disagreements(groups, node)).toEqual([])
        })

        it("the noble back-end agrees with every vector", async () => {
            expect(await disagreements(groups, noble)).toEqual([])
        })
    })
}
