/**
 * The flash wrapper (tools/device-flash.ts, docs/device.md): it works out the `devs flash`
 * command from a local runtime file, checks that file first, and refuses to download runtime
 * firmware in CI (GP-TM-05). Nothing here touches a board or the network: only the plan.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { RefusedError, UsageError } from "../../tools/args"
import { FlashOptions, inCi, planFlash } from "../../tools/device-flash"
import { TOOLS_ROOT } from "../../tools/device-common"

const dir = mkdtempSync(join(tmpdir(), "bulwark-flash-"))
const esp = join(dir, "devicescript-esp32s3-esp32s3_devkit_m-0x0.bin")
const uf2 = join(dir, "devicescript-rp2040w-pico_w.uf2")
writeFileSync(esp, Buffer.from("not really a runtime"))
writeFileSync(uf2, Buffer.from("not really a uf2"))
const WRONG_SHA = "ab".repeat(32)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function plan(extra: Partial<FlashOptions>, env: NodeJS.ProcessEnv = {}) {
    return planFlash({ download: false, deploy: false, dryRun: true, ...extra }, env, TOOLS_ROOT)
}

describe("flash plan", () => {
    it("flashes an ESP32-S3 from the local file on the given port", () => {
        const result = plan({ board: "esp32s3", port: "/dev/ttyUSB0", firmware: esp })

        expect(result.flashArgs.join(" ")).toBe(
            `flash esp32 --board esp32s3_devkit_m --port /dev/ttyUSB0 --file ${esp}`
        )
        expect(result.firmwareSha256).toMatch(/^[0-9a-f]{64}$/)
        expect(result.deployArgs).toBeNull()
    })

    it("flashes an RP2040-W from a .uf2 and deploys over serial when asked", () => {
        const result = plan({ board: "rp2040w", firmware: uf2, deploy: true })

        expect(result.flashArgs).toEqual(["flash", "rp2040", "--board", "pico_w", "--file", uf2])
        expect(result.deployArgs).toEqual(["devtools", "main.ts", "--serial"])
    })

    it("GP-TM-05: refuses to download runtime firmware in CI, even when asked to", () => {
        const run = () => plan({ board: "esp32s3", download: true }, { CI: "true" })

        expect(run).toThrow(RefusedError)
        expect(run).toThrow(/CI/)
    })

    it("outside CI, downloads only with an explicit --download", () => {
        const withoutFlag = () => plan({ board: "esp32s3" })

        const withFlag = plan({ board: "esp32s3", download: true })

        expect(withoutFlag).toThrow(UsageError)
        expect(withFlag.flashArgs).not.toContain("--file")
    })

    it("GP-TM-05: refuses a runtime file whose SHA-256 differs from the one given", () => {
        const run = () => plan({ board: "esp32s3", firmware: esp, firmwareSha256: WRONG_SHA })

        expect(run).toThrow(RefusedError)
    })

    it("accepts a runtime file whose SHA-256 matches, in any case", () => {
        const sha = plan({ board: "esp32s3", firmware: esp }).firmwareSha256

        const result = plan({ board: "esp32s3", firmware: esp, firmwareSha256: sha.toUpperCase() })

        expect(result.firmwareSha256).toBe(sha)
    })

    it("refuses an ESP32 file with no offset in its name, the sim, an RP2040 port", () => {
        const bad = join(dir, "runtime.bin")
        writeFileSync(bad, "x")

        expect(() => plan({ board: "esp32c3", firmware: bad })).toThrow(UsageError)
        expect(() => plan({ board: "sim", firmware: esp })).toThrow(UsageError)
        expect(() => plan({ board: "rp2040w", firmware: uf2, port: "/dev/x" })).toThrow(UsageError)
    })

    it("reads CI from the environment the way CI systems set it", () => {
        expect(inCi({ CI: "true" })).toBe(true)
        expect(inCi({ CI: "1" })).toBe(true)
        expect(inCi({ CI: "false" })).toBe(false)
        expect(inCi({})).toBe(false)
    })
})
