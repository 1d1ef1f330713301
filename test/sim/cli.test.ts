/**
 * The factory-station commands `bulwark sim new|flash|lock|revoke`: their JSON results and
 * exit codes (0 ok, 1 refused, 2 bad usage), the anchors they burn (GP-TM-01), and the
 * debug port closed by `sim lock` (GP-TM-33).
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { anchorDigest } from "../../boot/anchor"
import { SimBoard } from "../../sim/board"
import { SimCrypto } from "../../sim/crypto"
import { testProfileJson } from "../../sim/testing"
import { generateReleaseKey, publicKeyFileText, publicPart } from "../../tools/keyfile"
import { runCli } from "../helpers/cli"

let root: string
let pubA: string
let pubB: string
let smallProfile: string
let anchorA: Buffer

beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-sim-cli-"))
    const a = publicPart(generateReleaseKey("p256"))
    const b = publicPart(generateReleaseKey("ed25519"))
    pubA = join(root, "a.pub")
    pubB = join(root, "b.pub")
    writeFileSync(pubA, publicKeyFileText(a))
    writeFileSync(pubB, publicKeyFileText(b))
    anchorA = anchorDigest(new SimCrypto(), a.keys)
    smallProfile = join(root, "profile.json")
    writeFileSync(smallProfile, JSON.stringify(testProfileJson()))
})

afterAll(() => {
    rmSync(root, { recursive: true, force: true })
})

let devCount = 0
function newDevPath(): string {
    devCount++
    return join(root, "dev" + devCount)
}

/** Runs the CLI in-process; the exit code and the parsed JSON line of stdout. */
async function run(argv: string[]): Promise<{ code: number; json: Record<string, any> }> {
    const { code, json } = await runCli(argv)
    return { code, json }
}

function flashArgs(dir: string, slot: string, image: string, ...extra: string[]): string[] {
    return ["sim", "flash", "--dir", dir, "--slot", slot, "--image", image, ...extra]
}

async function newDevice(extra: string[] = []): Promise<string> {
    const dir = newDevPath()
    const result = await run([
        "sim", "new", "--dir", dir, "--class", "acme-sensor", "--trust", pubA,
        "--profile", smallProfile, "--json", ...extra,
    ])
    expect(result.code).toBe(0)
    return dir
}

describe("bulwark sim new", () => {
    it("GP-TM-01: burns the --trust anchors into OTP slots in order, and the counter", async () => {
        const dir = newDevPath()

        const result = await run([
            "sim", "new", "--dir", dir, "--class", "acme-sensor", "--trust", pubA,
            "--trust", pubB, "--counter", "4", "--profile", smallProfile, "--json",
        ])

        expect(result.code).toBe(0)
        expect(result.json).toMatchObject({ ok: true, deviceClass: "acme-sensor", counter: 4 })
        expect(result.json.anchors[0]).toBe(anchorA.toString("hex"))
        const board = await SimBoard.open(dir)
        expect((await board.otp.readKeySlot(0)).digest).toEqual(anchorA)
        const slot1 = await board.otp.readKeySlot(1)
        expect(slot1.digest?.toString("hex")).toBe(result.json.anchors[1])
        expect((await board.otp.readKeySlot(2)).digest).toBeNull()
        expect(await board.otp.readCounter()).toBe(4)
        expect(board.profile.deviceClass).toBe("acme-sensor")
        board.close()
    })

    it("uses the package's devs.config.json when no --profile is given", async () => {
        const dir = newDevPath()

        const result = await run(["sim", "new", "--dir", dir, "--class", "c1", "--trust", pubA])

        expect(result.code).toBe(0)
        const board = await SimBoard.open(dir)
        expect(board.profile.flash.partitions.map((p) => p.name)).toContain("slot-a")
        expect(board.profile.deviceClass).toBe("c1")
        board.close()
    })

    it("never creates a device over an existing one (exit 2)", async () => {
        const dir = await newDevice()

        const result = await run([
            "sim", "new", "--dir", dir, "--class", "other", "--trust", pubB, "--json",
        ])

        expect(result.code).toBe(2)
        expect(result.json.ok).toBe(false)
    })

    it("exits 2 on bad usage and unreadable input", async () => {
        const dir = newDevPath()
        const base = ["sim", "new", "--dir", dir, "--class", "c"]

        expect((await run(base)).code).toBe(2)
        expect((await run([...base, "--trust", join(root, "missing.pub")])).code).toBe(2)
        expect((await run([...base, "--trust", smallProfile])).code).toBe(2)
        expect((await run([...base, "--trust", pubA, "--counter", "65"])).code).toBe(2)
        expect((await run([...base, "--trust", pubA, "--profile", pubA])).code).toBe(2)
        const badClass = ["sim", "new", "--dir", dir, "--class", "bad class!", "--trust", pubA]
        expect((await run(badClass)).code).toBe(2)
        const fourTrust = ["--trust", pubA, "--trust", pubA, "--trust", pubB, "--trust", pubB]
        expect((await run([...base, ...fourTrust])).code).toBe(2)
    })
})

describe("bulwark sim flash, lock, revoke", () => {
    it("writes an image into the slot through the debug port", async () => {
        const dir = await newDevice()
        const image = join(root, "image.bin")
        writeFileSync(image, Buffer.from("signed image bytes"))

        const result = await run(flashArgs(dir, "b", image, "--json"))

        expect(result).toEqual({
            code: 0,
            json: { ok: true, dir, slot: "b", partition: "slot-b", bytes: 18 },
        })
        const board = await SimBoard.open(dir)
        expect(await board.flash.partition("slot-b").read(0, 20)).toEqual(
            Buffer.concat([Buffer.from("signed image bytes"), Buffer.from([0xff, 0xff])])
        )
        board.close()
    })

    it("GP-TM-33: flashing through the debug port is refused after sim lock", async () => {
        const dir = await newDevice()
        const genuine = join(root, "genuine.bin")
        const attacker = join(root, "attacker.bin")
        writeFileSync(genuine, Buffer.from("genuine"))
        writeFileSync(attacker, Buffer.from("attacker"))
        expect((await run(flashArgs(dir, "a", genuine))).code).toBe(0)

        const lock = await run(["sim", "lock", "--dir", dir, "--json"])
        const result = await run(flashArgs(dir, "a", attacker, "--json"))

        expect(lock.json).toMatchObject({
            ok: true,
            locks: { debugDisabled: true, keysLocked: true },
        })
        expect(result.code).toBe(1)
        expect(result.json).toMatchObject({ ok: false, check: "debug-disabled" })
        const board = await SimBoard.open(dir)
        expect(await board.flash.partition("slot-a").read(0, 7)).toEqual(Buffer.from("genuine"))
        expect(await board.otp.readLocks()).toEqual({ debugDisabled: true, keysLocked: true })
        board.close()
    })

    it("exits 2 for a slot other than a or b, an image too big, a missing device", async () => {
        const dir = await newDevice()
        const big = join(root, "big.bin")
        writeFileSync(big, Buffer.alloc(65537))

        expect((await run(flashArgs(dir, "c", big))).code).toBe(2)
        expect((await run(flashArgs(dir, "a", big))).code).toBe(2)
        expect((await run(flashArgs(newDevPath(), "a", big))).code).toBe(2)
    })

    it("GP-TM-01: revokes an OTP key slot for good", async () => {
        const dir = await newDevice()

        const result = await run(["sim", "revoke", "--dir", dir, "--slot", "0", "--json"])
        const again = await run(["sim", "revoke", "--dir", dir, "--slot", "0", "--json"])

        expect(result.json).toMatchObject({ ok: true, slot: 0, revoked: true })
        expect(result.json.digest).toBe(anchorA.toString("hex"))
        expect(again.code).toBe(0)
        const board = await SimBoard.open(dir)
        expect(await board.otp.readKeySlot(0)).toEqual({ digest: anchorA, revoked: true })
        board.close()
        expect((await run(["sim", "revoke", "--dir", dir, "--slot", "3"])).code).toBe(2)
    })
})
