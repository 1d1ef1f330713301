/**
 * `bulwark attest request|verify` (docs/attestation.md; GP-TM-56, GP-TM-41): an operator
 * signs a request, a simulated device answers it, and the report is checked offline:
 * exit 0 genuine and as expected, 1 refused (replayed, unexpected image), 2 unreadable.
 */

import { generateKeyPairSync } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { AttestContext, serveRequest } from "../../src/attest"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { runCli } from "../helpers/cli"
import { removeTempDirs, tempDir } from "../transport/fixtures"

const DIGEST = "7e".repeat(32)

let work: string
let board: SimBoard
let pubFile: string
let keyFile: string

beforeAll(async () => {
    work = tempDir("bulwark-attest-cli-")
    const created = await SimBoard.create(join(work, "dev"), {
        profile: testProfileJson(),
        trust: [Buffer.alloc(32, 1)],
        counter: 4,
    })
    created.close()
    board = await SimBoard.open(join(work, "dev"))
    const pub = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
    pubFile = join(work, "device.pub")
    writeFileSync(pubFile, pub.toString("hex") + "\n")
    keyFile = join(work, "operator.pem")
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }))
})

afterAll(() => {
    board.close()
    removeTempDirs()
})

/** `attest request`, then the simulated device answers it; returns the report file. */
async function requestAndAnswer(name: string): Promise<{ report: string; nonce: string }> {
    const out = join(work, name + ".req")
    const made = await runCli(["attest", "request", "--device", "dev-cli", "--key", keyFile,
        "--out", out, "--json"])
    expect(made.code).toBe(0)
    const operatorPub = Buffer.from(made.json.operatorPublicKey, "hex")
    const ctx: AttestContext = {
        secureElement: board.secureElement, crypto: board.crypto, clock: board.clock,
        otp: board.otp, deviceId: "dev-cli", operatorKeys: [operatorPub], recentNonces: [],
        measured: { slot: "a", version: "3.0.0", securityCounter: 4, digest: DIGEST, keySlot: 0,
            trial: false, attempt: 0, event: "none", eventSlot: null },
        selfTest: { ok: true, failed: [] },
    }
    const served = await serveRequest(ctx, readFileSync(out))
    expect(served.check).toBe("ok")
    const report = join(work, name + ".report")
    writeFileSync(report, served.report!)
    return { report, nonce: made.json.nonce }
}

describe("bulwark attest", () => {
    it("GP-TM-56: a genuine report of the expected image exits 0 with its fields", async () => {
        const { report, nonce } = await requestAndAnswer("genuine")

        const res = await runCli(["attest", "verify", report, "--device-pub", pubFile, "--nonce", nonce,
            "--expect-digest", DIGEST, "--min-counter", "4", "--json"])

        expect(res.code).toBe(0)
        expect(res.json).toMatchObject({ ok: true, genuine: true })
        expect(res.json.report).toMatchObject({ deviceId: "dev-cli", version: "3.0.0", otpCounter: 4,
            keySlots: ["active", "blank", "blank"], digest: DIGEST })
    })

    it("GP-TM-56: a replayed report, an unexpected image and a higher minimum counter exit 1", async () => {
        const old = await requestAndAnswer("old")
        const fresh = await requestAndAnswer("fresh")
        const base = ["attest", "verify", fresh.report, "--device-pub", pubFile, "--json"]

        const replay = await runCli(["attest", "verify", old.report, "--device-pub", pubFile,
            "--nonce", fresh.nonce, "--json"])
        const image = await runCli([...base, "--nonce", fresh.nonce, "--expect-digest", "00".repeat(32)])
        const counter = await runCli([...base, "--nonce", fresh.nonce, "--min-counter", "5"])

        expect([replay.code, image.code, counter.code]).toEqual([1, 1, 1])
        expect([replay.json.check, image.json.check, counter.json.check]).toEqual(["nonce", "digest", "counter"])
    })

    it("GP-TM-56: an altered report exits 1; unreadable input exits 2", async () => {
        const { report, nonce } = await requestAndAnswer("altered")
        const altered = readFileSync(report)
        altered[altered.length - 70] ^= 1
        writeFileSync(join(work, "altered.bin"), altered)
        writeFileSync(join(work, "garbage.bin"), "not a report")
        const verify = (file: string, n = nonce) =>
            runCli(["attest", "verify", file, "--device-pub", pubFile, "--nonce", n, "--json"])

        const forged = await verify(join(work, "altered.bin"))
        const garbage = await verify(join(work, "garbage.bin"))
        const missing = await verify(join(work, "no-such-file"))
        const badNonce = await verify(report, "xyz")

        expect(forged).toMatchObject({ code: 1, json: { check: "signature" } })
        expect([garbage.code, missing.code, badNonce.code]).toEqual([2, 2, 2])
    })
})
