/**
 * `npm start` (tools/demo.ts): the newcomer's story completes, every device does what its
 * scenario expects, and a second run in the same folder needs no manual clean-up.
 */

import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

import { afterAll, describe, expect, it } from "vitest"

import { runDemo } from "../tools/demo"

const dir = join(mkdtempSync(join(tmpdir(), "bulwark-demo-")), "state")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function demo(): Promise<Awaited<ReturnType<typeof runDemo>>> {
    const lines: string[] = []
    const rows = await runDemo(
        { dir, profilePath: resolve(__dirname, "../devs.config.json"), out: (l) => lines.push(l), live: false },
        new Promise<void>(() => undefined)
    )
    expect(lines.join("\n")).not.toMatch(/BEGIN (EC )?PRIVATE KEY|setup code/i)
    return rows
}

describe("npm start", () => {
    // Two whole stories with real sockets and real time: a generous bound for a loaded CI box.
    it("GP-TM-18: updates one device, refuses a tampered image on another, recovers a third from a power cut, twice in a row", { timeout: 300_000 }, async () => {
        const first = await demo()
        const second = await demo()

        for (const rows of [first, second]) {
            expect(rows.map((r) => [r.device, r.ok, r.finalVersion])).toEqual([
                ["sensor-1", true, "2.0.0"],
                ["sensor-2", true, "1.0.0"],
                ["sensor-3", true, "2.0.0"],
            ])
            expect(rows[1].update).toMatch(/^refused/)
            expect(rows[2].boot).toMatch(/ok \([3-9] boots\)/)
        }
    })
})
