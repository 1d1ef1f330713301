/**
 * The hybrid identity end to end through the CLI (GP-TM-04, GP-TM-34, GP-TM-35, GP-TM-36):
 * `keys new --alg hybrid` makes one identity of two key pairs under one anchor, `image sign`
 * adds both signatures, and `image verify --json` reports a verdict per signature for the
 * sim and the DeviceScript target. The one test that signs with SLH-DSA for real (seconds).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { publicKeyFileText, publicPart, readPublicKeyFile } from "../../tools/keyfile"
import { CliResult, runCli } from "../helpers/cli"
import { loadHybrid } from "./fixtures/hybrid"
import { DEVICE_CLASS, entriesOf, withTrailer } from "./helpers"

let dir: string

beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-hybrid-cli-"))
})

afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
})

function run(...argv: string[]): Promise<CliResult> {
    return runCli(argv)
}

function verdicts(json: any): string[] {
    return (json.signatures ?? []).map((s: any) => `${s.algorithm}:${s.verdict}`)
}

describe("bulwark keys new --alg hybrid, image sign, image verify", () => {
    it("GP-TM-35: makes one identity, signs both halves, verifies per target", async () => {
        const keys = join(dir, "keys")
        const made = await run("keys", "new", "--out", keys, "--alg", "hybrid", "--json")
        expect(made.code).toBe(0)
        expect(made.json.algorithm).toBe("hybrid")
        expect(made.json.keys).toEqual(["ecdsa-p256-sha256", "slh-dsa-sha2-128s"])
        expect(statSync(join(keys, "release.key")).mode & 0o777).toBe(0o600)
        const pub = readPublicKeyFile(join(keys, "release.pub"))
        expect(pub.keys.map((k) => k.key.length)).toEqual([65, 32])
        expect(pub.anchor.toString("hex")).toBe(made.json.anchor)

        const payload = join(dir, "payload.bin")
        writeFileSync(payload, Buffer.alloc(3000, 0x5a))
        const image = join(dir, "image.bin")
        const signed = await run("image", "sign", "--key", join(keys, "release.key"), "--in",
            payload, "--out", image, "--version", "2.0.0", "--counter", "1", "--class",
            DEVICE_CLASS, "--json")
        expect(signed.code).toBe(0)
        expect(signed.json.signatures).toEqual(["ecdsa-p256-sha256", "slh-dsa-sha2-128s"])

        const trust = ["--trust", join(keys, "release.pub"), "--json"]
        const sim = await run("image", "verify", image, "--policy", "hybrid", ...trust)
        expect(sim.code).toBe(0)
        expect(verdicts(sim.json)).toEqual([
            "ecdsa-p256-sha256:passed",
            "slh-dsa-sha2-128s:passed",
        ])

        const ds = ["--target", "devicescript", ...trust]
        const pq = await run("image", "verify", image, "--policy", "pq-only", ...ds)
        expect(pq.code).toBe(0)
        expect(verdicts(pq.json)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])

        const strict = await run("image", "verify", image, "--policy", "hybrid", ...ds)
        expect(strict.code).toBe(1)
        expect(strict.json.check).toBe("signature-unverifiable")
        expect(verdicts(strict.json)).toEqual(verdicts(pq.json))

        const ruled = await run("image", "verify", image, "--policy", "hybrid", ...ds,
            "--accept-unverifiable-ecdsa")
        expect(ruled.code).toBe(0)
        expect(verdicts(ruled.json)).toEqual(verdicts(pq.json))
    })
})

describe("bulwark image verify --json on hybrid images", () => {
    it("GP-TM-04: names the failed half of a damaged hybrid image", async () => {
        const fixture = loadHybrid()
        const pubPath = join(dir, "a.pub")
        writeFileSync(pubPath, publicKeyFileText(publicPart(fixture.a)))
        const entries = entriesOf(fixture.imageA)
        const last = Buffer.from(entries[entries.length - 1])
        expect(last[4]).toBe(3)
        last[last.length - 1] ^= 0x01
        const damaged = join(dir, "damaged.bin")
        writeFileSync(damaged, withTrailer(fixture.imageA, [...entries.slice(0, -1), last]))

        const result = await run("image", "verify", damaged, "--trust", pubPath, "--policy",
            "classical", "--json")

        expect(result.code).toBe(1)
        expect(result.json.check).toBe("signature")
        expect(verdicts(result.json)).toEqual([
            "ecdsa-p256-sha256:passed",
            "slh-dsa-sha2-128s:failed",
        ])
        expect(readFileSync(damaged).length).toBe(fixture.imageA.length)
    })

    it("refuses an unknown --target as bad usage", async () => {
        const fixture = loadHybrid()
        const image = join(dir, "a.bin")
        writeFileSync(image, fixture.imageA)
        const pubPath = join(dir, "a2.pub")
        writeFileSync(pubPath, publicKeyFileText(publicPart(fixture.a)))

        const result = await run("image", "verify", image, "--trust", pubPath, "--target",
            "esp32", "--json")

        expect(result.code).toBe(2)
    })
})
