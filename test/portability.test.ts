/**
 * Layering and portability rules of DESIGN.md sections 2 and 4, enforced by reading the
 * sources: portable modules (boot/, ota/ but ota/host/, src/, hal/) import only other
 * portable modules; only hal/devicescript/ may import @devicescript/*; nothing imports test/.
 */

import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"

const ROOT = resolve(__dirname, "..")
const PORTABLE_ROOTS = ["boot", "ota", "src", "hal"]
const HOST_ONLY = ["ota/host", "sim", "tools", "test", "bench"]

function listTs(dir: string): string[] {
    const abs = join(ROOT, dir)
    let entries: string[]
    try {
        entries = readdirSync(abs)
    } catch {
        return []
    }
    const out: string[] = []
    for (const name of entries) {
        const rel = join(dir, name)
        if (statSync(join(ROOT, rel)).isDirectory()) out.push(...listTs(rel))
        else if (name.endsWith(".ts")) out.push(rel)
    }
    return out
}

function isPortable(rel: string): boolean {
    if (rel.startsWith("ota/host/")) return false
    return PORTABLE_ROOTS.some((r) => rel.startsWith(r + "/"))
}

/** Module specifiers of import/export-from statements and dynamic imports. */
export function importsOf(source: string): string[] {
    const specs: string[] = []
    const re = /(?:^|\s)(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm
    let m: RegExpExecArray | null
    while ((m = re.exec(source)) !== null) specs.push(m[1] ?? m[2] ?? m[3])
    return specs
}

export function violations(rel: string, source: string): string[] {
    const bad: string[] = []
    const inDeviceHal = rel.startsWith("hal/devicescript/")
    for (const spec of importsOf(source)) {
        if (spec.startsWith(".")) {
            const target = relative(ROOT, resolve(ROOT, dirname(rel), spec))
            if (HOST_ONLY.some((h) => target === h || target.startsWith(h + "/")))
                bad.push(`${rel}: imports host-only ${spec}`)
            else if (!isPortable(target + ".ts") && !isPortable(target + "/index.ts"))
                bad.push(`${rel}: imports ${spec} outside the portable tree`)
            continue
        }
        if (spec.startsWith("@devicescript/") && inDeviceHal) continue
        bad.push(`${rel}: imports package ${spec}`)
    }
    return bad
}

/** Constructs DeviceScript 2.16.4 cannot compile or runs wrongly (DESIGN.md section 4). */
const FORBIDDEN: [RegExp, string][] = [
    [/\bDate\b/, "Date"],
    [/\bBigInt\b|\b\d+n\b/, "BigInt"],
    [/\bnew RegExp\b|(?:^|[=(,:]\s*)\/[^/*\s][^/\n]*\/[gimsuy]*/m, "RegExp"],
    [/\b(?:Uint8Array|DataView|Int32Array|Uint32Array|ArrayBuffer)\b/, "typed arrays"],
    [/\bfunction\s*\*/, "generators"],
    [/^\s*(?:static\s+)?(?:get|set)\s+\w+\s*\(/m, "getters/setters"],
    [/\bexport\s+default\b/, "export default"],
    [/\bimport\s+\*\s+as\s+\w+\s+from\s+["']\./, "import * as of a local file"],
    [/\bPromise\.all\b|\bnew Promise\b/, "Promise.all / new Promise"],
]

function stripComments(source: string): string {
    return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'])\/\/.*$/gm, "$1")
}

describe("portable code", () => {
    const files = PORTABLE_ROOTS.flatMap(listTs).filter(isPortable)

    it("exists", () => {
        expect(files.length).toBeGreaterThan(0)
    })

    it("imports only portable modules and no Node, sim, tools or npm package", () => {
        const bad = files.flatMap((f) => violations(f, readFileSync(join(ROOT, f), "utf8")))
        expect(bad).toEqual([])
    })

    it("keeps to the DeviceScript subset of DESIGN.md section 4", () => {
        const bad: string[] = []
        for (const f of files) {
            const src = stripComments(readFileSync(join(ROOT, f), "utf8"))
            for (const [re, what] of FORBIDDEN) if (re.test(src)) bad.push(`${f}: ${what}`)
        }
        expect(bad).toEqual([])
    })

    it("the checker catches a node import, a sim import and an npm package", () => {
        expect(violations("src/x.ts", 'import { readFileSync } from "node:fs"')).toHaveLength(1)
        expect(violations("boot/x.ts", 'import { SimBoard } from "../sim/board"')).toHaveLength(1)
        expect(violations("ota/x.ts", 'import { p256 } from "@noble/curves/nist.js"')).toHaveLength(1)
        expect(violations("ota/x.ts", 'import { Offer } from "./host/publisher"')).toHaveLength(1)
        expect(violations("src/x.ts", 'import { verifyImage } from "../boot/image"')).toEqual([])
    })
})

describe("no module imports test/", () => {
    it("holds for every source folder", () => {
        const all = [...PORTABLE_ROOTS, "sim", "tools", "bench"].flatMap(listTs)
        const bad = all.filter((f) =>
            importsOf(readFileSync(join(ROOT, f), "utf8")).some((s) => {
                if (!s.startsWith(".")) return false
                const t = relative(ROOT, resolve(ROOT, dirname(f), s))
                return t === "test" || t.startsWith("test/")
            })
        )
        expect(bad).toEqual([])
    })
})
