/**
 * The device build (tools/device-build.ts, docs/device.md): every portable module compiles
 * with the pinned DeviceScript compiler, and a non-portable construct anywhere breaks the
 * build with the file named (DESIGN.md section 4). The injection tests build a copy of the
 * device entry's own dependency closure, so they hold whatever else is in the checkout.
 */

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, normalize } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { UsageError } from "../../tools/args"
import { buildDevice, entrySource } from "../../tools/device-build"
import { portableModules, TOOLS_ROOT } from "../../tools/device-common"

/** A full build takes 5 to 20 s; CI runs it beside the rest of the suite on two cores. */
const BUILD_TIMEOUT_MS = 180_000
const temps: string[] = []

function tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    temps.push(dir)
    return dir
}

afterAll(() => {
    for (const dir of temps) rmSync(dir, { recursive: true, force: true })
})

/** `file` and every repository file it imports, transitively (relative imports only). */
function closure(file: string, seen: Set<string> = new Set()): Set<string> {
    if (seen.has(file)) return seen
    seen.add(file)
    const source = readFileSync(join(TOOLS_ROOT, file), "utf8")
    for (const m of source.matchAll(/from\s+"(\.[^"]+)"/g)) {
        const target = normalize(join(dirname(file), m[1])) + ".ts"
        closure(target, seen)
    }
    return seen
}

/** A checkout holding only the device entry, its dependencies, hal/ and the profile. */
function minimalCheckout(): string {
    const root = tempDir("bulwark-device-src-")
    const files = closure("src/device.ts")
    for (const f of portableModules(TOOLS_ROOT)) if (f.startsWith("hal/")) closure(f, files)
    for (const f of [...files, "devs.config.json"]) {
        mkdirSync(dirname(join(root, f)), { recursive: true })
        copyFileSync(join(TOOLS_ROOT, f), join(root, f))
    }
    return root
}

describe("device build", () => {
    it("compiles every portable module of this checkout with the pinned devs", async () => {
        const out = join(tempDir("bulwark-device-out-"), "bytecode.devs")

        const result = await buildDevice({ workDir: tempDir("bulwark-device-work-"), outFile: out })

        expect(result.diagnostics, result.diagnostics).not.toMatch(/error/)
        expect(result.ok).toBe(true)
        expect(result.bytecodeBytes).toBeGreaterThan(1000)
        expect(result.modules).toEqual(
            expect.arrayContaining(["boot/bytes.ts", "hal/devicescript/crypto.ts"])
        )
    }, BUILD_TIMEOUT_MS)

    it("imports every portable module, the profile's board and src/device.ts last", () => {
        const modules = portableModules(TOOLS_ROOT)

        const source = entrySource("esp32s3_devkit_m", modules)

        expect(source).toContain('import "@dsboard/esp32s3_devkit_m"')
        for (const m of modules) expect(source).toContain(`import "./${m.replace(/\.ts$/, "")}"`)
        expect(source).toContain('from "./src/device"')
        expect(modules).not.toContain("src/device.ts")
        expect(modules.some((m) => m.startsWith("ota/host/"))).toBe(false)
    })

    it("refuses to build for the sim board", async () => {
        const build = buildDevice({ board: "sim", workDir: tempDir("bulwark-device-sim-") })

        await expect(build).rejects.toThrow(UsageError)
    })

    it("fails on Date.now() in src/, Buffer.concat([]) in ota/, static init in boot/", async () => {
        const root = minimalCheckout()
        const probe = (file: string, lines: string[]) => {
            mkdirSync(dirname(join(root, file)), { recursive: true })
            writeFileSync(join(root, file), lines.join("\n") + "\n")
        }
        probe("src/clock-probe.ts", ["export function now(): number {", "  return Date.now()", "}"])
        probe("ota/join-probe.ts", [
            "export function both(a: Buffer, b: Buffer): Buffer {",
            "    return Buffer.concat([a, b])",
            "}",
        ])
        probe("boot/static-probe.ts", ["export class Limits {", "    static max = 3", "}"])

        const result = await buildDevice({ root })

        const errors = result.diagnostics.split("\n").filter((l) => / error /.test(l))
        expect(result.ok).toBe(false)
        expect(result.diagnostics).toMatch(/src\/clock-probe\.ts\(2,\d+\): error .*Date/)
        expect(result.diagnostics).toMatch(/ota\/join-probe\.ts\(2,\d+\): error/)
        expect(result.diagnostics).toMatch(/boot\/static-probe\.ts\(2,\d+\): error .*static/)
        // Nothing else fails: the copied closure alone compiles, so the probes broke it.
        expect(errors.filter((l) => !/-probe\.ts\(/.test(l)), result.diagnostics).toEqual([])
    }, BUILD_TIMEOUT_MS)
})
