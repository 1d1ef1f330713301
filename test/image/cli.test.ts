/**
 * The `bulwark keys` and `bulwark image` commands and the key-file readers: keys are never
 * overwritten and are private to their owner (GP-TM-35), verification refusals exit 1 with
 * the named check (GP-TM-04, GP-TM-06), unreadable input exits 2, JSON always carries "ok".
 */

import { afterEach, beforeEach, describe, expect, it } from "vitest"
import {
    existsSync,
    mkdtempSync,
    readFileSync,
    rmSync,
    statSync,
    unlinkSync,
    writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { KeyFileError, readPrivateKeyFile, readPublicKeyFile } from "../../tools/keyfile"
import { CliResult, runCli } from "../helpers/cli"

let dir: string

beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-cli-"))
})

afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
})

/** Runs the CLI in-process; returns its exit code and its last JSON line. */
function run(...argv: string[]): Promise<CliResult> {
    return runCli(argv)
}

async function newKeys(name = "keys", alg = "p256"): Promise<string> {
    const out = join(dir, name)
    const result = await run("keys", "new", "--out", out, "--alg", alg, "--json")
    expect(result.code).toBe(0)
    return out
}

async function signed(keys: string, extra: string[] = []): Promise<string> {
    const payload = join(dir, "payload.bin")
    writeFileSync(payload, Buffer.alloc(5000, 0x5a))
    const image = join(dir, "image.bin")
    const result = await run("image", "sign", "--key", join(keys, "release.key"), "--in",
        payload, "--out", image, "--version", "1.4.0", "--counter", "3", "--class",
        "bulwark-demo-sensor", "--json", ...extra)
    expect(result.code).toBe(0)
    return image
}

describe("bulwark keys new", () => {
    it("GP-TM-35: writes release.key (mode 0600) and a release.pub with the anchor", async () => {
        const out = join(dir, "keys")

        const result = await run("keys", "new", "--out", out, "--json")

        expect(result.code).toBe(0)
        expect(result.json.ok).toBe(true)
        expect(statSync(join(out, "release.key")).mode & 0o777).toBe(0o600)
        const pub = readPublicKeyFile(join(out, "release.pub"))
        expect(pub.algorithm).toBe("ecdsa-p256-sha256")
        expect(pub.anchor.toString("hex")).toBe(result.json.anchor)
        expect(readPrivateKeyFile(join(out, "release.key")).anchor).toEqual(pub.anchor)
    })

    it("makes Ed25519 identities on request", async () => {
        const out = await newKeys("ed", "ed25519")

        expect(readPublicKeyFile(join(out, "release.pub")).keys[0].algorithm).toBe("ed25519")
    })

    it("GP-TM-35: never overwrites an existing key file (exit 2, file unchanged)", async () => {
        const out = await newKeys()
        const before = readFileSync(join(out, "release.key"))

        const again = await run("keys", "new", "--out", out, "--json")

        expect(again.code).toBe(2)
        expect(again.json.ok).toBe(false)
        expect(readFileSync(join(out, "release.key"))).toEqual(before)
    })

    it("GP-TM-35: writes nothing when only release.pub exists", async () => {
        const out = join(dir, "half")
        await run("keys", "new", "--out", out)
        const pub = readFileSync(join(out, "release.pub"))
        unlinkSync(join(out, "release.key"))

        const again = await run("keys", "new", "--out", out)

        expect(again.code).toBe(2)
        expect(existsSync(join(out, "release.key"))).toBe(false)
        expect(readFileSync(join(out, "release.pub"))).toEqual(pub)
    })

    it("refuses an unknown --alg and a missing --out with exit 2", async () => {
        expect((await run("keys", "new", "--out", join(dir, "x"), "--alg", "rsa")).code).toBe(2)
        expect((await run("keys", "new")).code).toBe(2)
    })
})

describe("bulwark image", () => {
    it("GP-TM-04: signs, inspects and verifies an image", async () => {
        const keys = await newKeys()
        const image = await signed(keys)

        const inspect = await run("image", "inspect", image, "--json")
        const verify = await run("image", "verify", image, "--trust", join(keys, "release.pub"),
            "--class", "bulwark-demo-sensor", "--counter", "3", "--json")

        expect(inspect.code).toBe(0)
        expect(inspect.json.header.version).toBe("1.4.0")
        expect(inspect.json.digestMatches).toBe(true)
        expect(inspect.json.trailer.entries.map((e: any) => e.name)).toEqual([
            "digest", "key-digest", "public-key", "signature"])
        expect(verify.code).toBe(0)
        expect(verify.json).toMatchObject({ ok: true, keySlot: 0, digest: inspect.json.digest })
    })

    it("GP-TM-04: refuses a tampered image with exit 1 and the check", async () => {
        const keys = await newKeys()
        const image = await signed(keys)
        const bytes = readFileSync(image)
        bytes[200] ^= 1
        writeFileSync(image, bytes)

        const result = await run("image", "verify", image, "--trust", join(keys, "release.pub"),
            "--json")

        expect(result.code).toBe(1)
        expect(result.json).toMatchObject({ ok: false, check: "digest" })
    })

    it("GP-TM-03: refuses an untrusted key's image, finds a trusted one in slot 1", async () => {
        const keys = await newKeys()
        const other = await newKeys("other")
        const image = await signed(keys)

        const refused = await run("image", "verify", image, "--trust",
            join(other, "release.pub"), "--json")
        const accepted = await run("image", "verify", image, "--trust",
            join(other, "release.pub"), "--trust", join(keys, "release.pub"), "--json")

        expect(refused.code).toBe(1)
        expect(refused.json.check).toBe("key-unknown")
        expect(accepted.code).toBe(0)
        expect(accepted.json.keySlot).toBe(1)
    })

    it("GP-TM-06: refuses a security counter below --counter and another --class", async () => {
        const keys = await newKeys()
        const image = await signed(keys)
        const trust = join(keys, "release.pub")

        const low = await run("image", "verify", image, "--trust", trust, "--counter", "4",
            "--json")
        const cls = await run("image", "verify", image, "--trust", trust, "--class", "other",
            "--json")

        expect(low.code).toBe(1)
        expect(low.json.check).toBe("security-counter")
        expect(cls.code).toBe(1)
        expect(cls.json.check).toBe("device-class")
    })

    it("exits 2 for a missing image, a bad trust file and bad sign arguments", async () => {
        const keys = await newKeys()
        const image = await signed(keys)
        const trust = join(keys, "release.pub")

        const missing = await run("image", "verify", join(dir, "nope"), "--trust", trust,
            "--json")
        const badTrust = await run("image", "verify", image, "--trust",
            join(keys, "release.key"), "--json")
        const badVersion = await run("image", "sign", "--key", join(keys, "release.key"),
            "--in", image, "--out", join(dir, "x.bin"), "--version", "1.2", "--counter", "1",
            "--class", "c", "--json")
        const garbage = join(dir, "garbage.bin")
        writeFileSync(garbage, "not an image")
        const inspect = await run("image", "inspect", garbage, "--json")

        for (const r of [missing, badTrust, badVersion, inspect]) {
            expect(r.code).toBe(2)
            expect(r.json.ok).toBe(false)
        }
        expect(inspect.json.check).toBe("truncated")
    })

    it("GP-TM-35: refuses to write an image over a key file", async () => {
        const keys = await newKeys()
        const keyPath = join(keys, "release.key")
        const before = readFileSync(keyPath)

        const result = await run("image", "sign", "--key", keyPath, "--in", keyPath, "--out",
            keyPath, "--version", "1.0.0", "--counter", "1", "--class", "c", "--json")

        expect(result.code).toBe(2)
        expect(readFileSync(keyPath)).toEqual(before)
    })
})

describe("key-file readers", () => {
    function write(name: string, value: unknown): string {
        const path = join(dir, name)
        writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value))
        return path
    }

    function checkOf(fn: () => unknown): string {
        try {
            fn()
            return "accepted"
        } catch (err) {
            if (err instanceof KeyFileError) return err.check
            throw err
        }
    }

    it("name the failed field of a bad release.pub", async () => {
        const keys = await newKeys()
        const good = JSON.parse(readFileSync(join(keys, "release.pub"), "utf8"))
        const upper = good.keys[0].publicKey.toUpperCase()
        const cases: [unknown, string][] = [
            ["{", "json"],
            [[], "json"],
            [{ ...good, format: "other" }, "format"],
            [{ ...good, algorithm: "ed25519" }, "algorithm"],
            [{ ...good, anchor: "00".repeat(32) }, "anchor"],
            [{ ...good, keys: [] }, "keys"],
            [{ ...good, keys: [{ ...good.keys[0], publicKey: "04" }] }, "publicKey"],
            [{ ...good, keys: [{ ...good.keys[0], publicKey: upper }] }, "publicKey"],
            [{ ...good, keys: [{ ...good.keys[0], algorithm: "rsa" }] }, "algorithm"],
        ]

        for (const [value, check] of cases) {
            expect(checkOf(() => readPublicKeyFile(write("bad.pub", value)))).toBe(check)
        }
        expect(checkOf(() => readPublicKeyFile(join(dir, "absent.pub")))).toBe("read")
    })

    it("refuse a release.key whose public key does not match its private key", async () => {
        const keys = await newKeys()
        const other = await newKeys("other")
        const good = JSON.parse(readFileSync(join(keys, "release.key"), "utf8"))
        const otherKey = JSON.parse(readFileSync(join(other, "release.key"), "utf8"))
        const swapped = { ...good.keys[0], publicKey: otherKey.keys[0].publicKey }
        const mixed = { ...good, keys: [swapped] }

        expect(checkOf(() => readPrivateKeyFile(write("mixed.key", mixed)))).toBe("publicKey")
        expect(checkOf(() => readPrivateKeyFile(join(keys, "release.pub")))).toBe("format")
    })
})
