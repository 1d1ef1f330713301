/**
 * The privacy modules on both targets (docs/privacy.md, "Targets"; GP-TM-10, GP-TM-14): the
 * scenario of device-probe.ts runs on Node and, compiled by the pinned DeviceScript, in its
 * VM (`devs run --test`); both must make the same observations line for line, non-ASCII
 * names and exact timestamps included. Self-contained: stages the probe's own import
 * closure in a temporary directory.
 */

import { spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, normalize, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { SimCrypto } from "../../sim/crypto"
import { runPrivacyProbe } from "./device-probe"

const ROOT = resolve(__dirname, "../..")
const DEVS = join(ROOT, "node_modules", ".bin", "devs")
const PROBE = "test/privacy/device-probe.ts"
const DEVICE_CRYPTO = "hal/devicescript/crypto.ts"
/** The VM's console cuts long lines: each observation goes out in pieces of this size. */
const CHUNK = 120
const VM_TIMEOUT_MS = 120_000

const temps: string[] = []
afterAll(() => {
    for (const dir of temps) rmSync(dir, { recursive: true, force: true })
})

/** `file` and every repository file it imports, transitively (relative imports only). */
function closure(file: string, seen: Set<string> = new Set()): Set<string> {
    if (seen.has(file)) return seen
    seen.add(file)
    const source = readFileSync(join(ROOT, file), "utf8")
    for (const m of source.matchAll(/from\s+"(\.[^"]+)"/g))
        closure(normalize(join(dirname(file), m[1])) + ".ts", seen)
    return seen
}

const ENTRY = `import * as ds from "@devicescript/core"
import { DeviceCrypto } from "./hal/devicescript/crypto"
import { runPrivacyProbe } from "./test/privacy/device-probe"

const lines = await runPrivacyProbe(new DeviceCrypto(), async function () {
    await ds.sleep(1)
})
for (let i = 0; i < lines.length; i++) {
    const text = lines[i]
    const parts = Math.max(1, Math.ceil(text.length / ${CHUNK}))
    for (let k = 0; k < parts; k++)
        console.log("PP " + i + " " + k + " " + text.slice(k * ${CHUNK}, (k + 1) * ${CHUNK}))
    await ds.sleep(1)
}
console.log("PP-END " + lines.length)
ds.restart()
`

/** Reassembles the probe's lines from the VM's "PP <line> <part> <text>" output. */
function vmLines(log: string): string[] {
    const parts = new Map<number, string[]>()
    for (const raw of log.split("\n")) {
        const at = raw.indexOf("PP ")
        if (at < 0) continue
        const m = /^PP (\d+) (\d+) (.*)$/s.exec(raw.slice(at))
        if (m === null) continue
        const line = Number(m[1])
        if (!parts.has(line)) parts.set(line, [])
        parts.get(line)![Number(m[2])] = m[3]
    }
    return [...parts.keys()].sort((a, b) => a - b).map((k) => parts.get(k)!.join(""))
}

describe("privacy on DeviceScript", () => {
    it("GP-TM-14: the VM makes the same observations as Node, line for line", async () => {
        const node = await runPrivacyProbe(new SimCrypto(), async () => undefined)
        const work = mkdtempSync(join(tmpdir(), "bulwark-privacy-vm-"))
        temps.push(work)
        for (const file of [...closure(PROBE), ...closure(DEVICE_CRYPTO)]) {
            mkdirSync(dirname(join(work, file)), { recursive: true })
            copyFileSync(join(ROOT, file), join(work, file))
        }
        writeFileSync(join(work, "privacy-entry.ts"), ENTRY)

        const run = spawnSync(
            DEVS,
            ["--no-colors", "run", "privacy-entry.ts", "--test", "--test-self-exit"]
                .concat(["-T", String(VM_TIMEOUT_MS), "--ignore-missing-config"]),
            {
                cwd: work,
                encoding: "utf8",
                timeout: VM_TIMEOUT_MS + 30_000,
                env: { ...process.env, NO_UPDATE_NOTIFIER: "1", GIT_OPTIONAL_LOCKS: "0" },
            }
        )
        const log = (run.stdout ?? "") + (run.stderr ?? "")

        expect(log, log.slice(-3000)).toContain("PP-END " + node.length)
        expect(run.status, log.slice(-3000)).toBe(0)
        expect(vmLines(log)).toEqual(node)
        expect(node.find((l) => l.startsWith("sent "))).toBe(
            'sent 1 {"v":1,"c":"telemetry","t":"1700000000","d":{"temperature":21.3,"humidity":40}}'
        )
    }, VM_TIMEOUT_MS + 60_000)
})
