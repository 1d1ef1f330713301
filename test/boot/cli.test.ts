/**
 * `bulwark sim boot --json`: the decision object other tools read (booted, version, trial,
 * refused with the check of each refused slot) and its exit codes: 0 booted, 1 recovery,
 * 2 bad usage.
 */

import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { publicKeyFileText, publicPart } from "../../tools/keyfile"
import { runCli } from "../helpers/cli"
import { CLASS, releaseKey, signedImage } from "./helpers"

afterAll(cleanupTestBoards)

let root: string
let pub: string
let profile: string
let v1: string

beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "bulwark-boot-cli-"))
    pub = join(root, "release.pub")
    writeFileSync(pub, publicKeyFileText(publicPart(releaseKey)))
    profile = join(root, "profile.json")
    writeFileSync(profile, JSON.stringify(testProfileJson()))
    v1 = join(root, "v1.img")
    writeFileSync(v1, await signedImage("1.0.0", 1))
})

async function device(name: string): Promise<string> {
    const dir = join(root, name)
    const made = await runCli([
        "sim", "new", "--dir", dir, "--class", CLASS, "--trust", pub, "--counter", "1",
        "--profile", profile, "--json",
    ])
    expect(made.code).toBe(0)
    return dir
}

describe("bulwark sim boot", () => {
    it("GP-TM-03: reports the booted slot, version and trial state as JSON", async () => {
        const dir = await device("ok")
        await runCli(["sim", "flash", "--dir", dir, "--slot", "a", "--image", v1])

        const result = await runCli(["sim", "boot", "--dir", dir, "--json"])

        expect(result.code).toBe(0)
        expect(result.json).toMatchObject({
            ok: true,
            booted: "a",
            version: "1.0.0",
            trial: false,
            refused: [],
        })
    })

    it("GP-TM-04: exits 1 in recovery and names why each slot was refused", async () => {
        const dir = await device("bad")
        const tampered = join(root, "tampered.img")
        const image = await signedImage("1.0.0", 1)
        image[120] ^= 0x04
        writeFileSync(tampered, image)
        await runCli(["sim", "flash", "--dir", dir, "--slot", "a", "--image", tampered])

        const result = await runCli(["sim", "boot", "--dir", dir, "--json"])

        expect(result.code).toBe(1)
        expect(result.json.booted).toBeNull()
        expect(result.json.recovery).toBe(true)
        expect(result.json.refused).toEqual([
            expect.objectContaining({ slot: "a", check: "digest" }),
            expect.objectContaining({ slot: "b", check: "empty" }),
        ])
    })

    it("exits 2 for a directory that is not a device", async () => {
        const result = await runCli(["sim", "boot", "--dir", join(root, "nothing"), "--json"])

        expect(result.code).toBe(2)
        expect(result.json.ok).toBe(false)
    })
})
