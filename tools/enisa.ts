/**
 * The ENISA matrix (docs/enisa.md), generated from the measures (enisa/gp-tm.tsv), our
 * mapping (enisa/mapping.json) and the names of the tests that carry each measure id, and
 * the checks that keep it honest: every measure has a row, every implemented or partial
 * measure has a passing test naming it, and the generated page is not stale.
 */

import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"

import { PACKAGE_ROOT } from "./app-build"

export const STATUSES = ["implemented", "partial", "hardware/platform", "organisational"]
const MEASURE_COUNT = 57

export interface Measure {
    id: string
    section: string
    text: string
}

export interface MappingRow {
    status: string
    modules: string[]
    /** What is missing, for a partial measure; what the board or team must provide otherwise. */
    missing?: string
    sim: string
    device: string
}

export interface MatrixInputs {
    measures: Measure[]
    sections: Map<string, string>
    mapping: Record<string, MappingRow>
    /** Measure id -> names of tests carrying it. */
    tests: Map<string, string[]>
}

function readTsv(path: string): string[][] {
    const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "")
    return lines.slice(1).map((l) => l.split("\t"))
}

export function readMeasures(root = PACKAGE_ROOT): Measure[] {
    return readTsv(join(root, "enisa/gp-tm.tsv")).map(([id, section, text]) => ({ id, section, text }))
}

export function readSections(root = PACKAGE_ROOT): Map<string, string> {
    return new Map(readTsv(join(root, "enisa/sections.tsv")).map(([s, t]) => [s, t] as [string, string]))
}

export function readMapping(root = PACKAGE_ROOT): Record<string, MappingRow> {
    return JSON.parse(readFileSync(join(root, "enisa/mapping.json"), "utf8")).measures
}

function listTests(dir: string): string[] {
    const out: string[] = []
    for (const name of readdirSync(dir)) {
        const path = join(dir, name)
        if (statSync(path).isDirectory()) out.push(...listTests(path))
        else if (name.endsWith(".test.ts")) out.push(path)
    }
    return out
}

const ID_RE = /GP-TM-(\d\d)/g

/** Ids carried by one test name ("GP-TM-22/23: ..." carries both 22 and 23). */
export function idsInName(name: string): string[] {
    const ids = new Set<string>()
    for (const m of name.matchAll(ID_RE)) ids.add(`GP-TM-${m[1]}`)
    for (const m of name.matchAll(/GP-TM-(\d\d)((?:\/\d\d)+)/g))
        for (const extra of m[2].split("/").filter(Boolean)) ids.add(`GP-TM-${extra}`)
    return [...ids]
}

/** Test names found statically: the first string argument of it()/test() calls. */
export function collectTestNames(root = PACKAGE_ROOT): Map<string, string[]> {
    const byId = new Map<string, string[]>()
    const callRe = /\b(?:it|test)(?:\.\w+)*(?:\([^)]*\))?\(\s*(["'`])((?:\\.|(?!\1).)*)\1/g
    for (const file of listTests(join(root, "test"))) {
        const source = readFileSync(file, "utf8")
        for (const m of source.matchAll(callRe)) {
            const name = m[2]
            for (const id of idsInName(name)) {
                const list = byId.get(id) ?? []
                list.push(`${relative(root, file)}: ${name}`)
                byId.set(id, list)
            }
        }
    }
    return byId
}

export function loadInputs(root = PACKAGE_ROOT): MatrixInputs {
    return {
        measures: readMeasures(root),
        sections: readSections(root),
        mapping: readMapping(root),
        tests: collectTestNames(root),
    }
}

/** Problems with the inputs, each a sentence; empty when the matrix is sound. */
export function matrixProblems(inputs: MatrixInputs): string[] {
    const problems: string[] = []
    if (inputs.measures.length !== MEASURE_COUNT)
        problems.push(`enisa/gp-tm.tsv has ${inputs.measures.length} measures, want ${MEASURE_COUNT}`)
    for (const m of inputs.measures) {
        const row = inputs.mapping[m.id]
        if (!row) {
            problems.push(`${m.id} has no row in enisa/mapping.json`)
            continue
        }
        if (!STATUSES.includes(row.status)) problems.push(`${m.id}: unknown status "${row.status}"`)
        if (row.status === "partial" && !row.missing) problems.push(`${m.id}: partial without "missing"`)
        if ((row.status === "implemented" || row.status === "partial") && !inputs.tests.get(m.id)?.length)
            problems.push(`${m.id} is ${row.status} but no test name carries its id`)
    }
    for (const id of Object.keys(inputs.mapping))
        if (!inputs.measures.some((m) => m.id === id)) problems.push(`mapping has unknown measure ${id}`)
    return problems
}

function cell(text: string): string {
    return text.replace(/\|/g, "\\|").replace(/\n/g, " ")
}

export function renderMatrix(inputs: MatrixInputs): string {
    const counts = new Map<string, number>()
    for (const m of inputs.measures) {
        const s = inputs.mapping[m.id]?.status ?? "missing"
        counts.set(s, (counts.get(s) ?? 0) + 1)
    }
    const lines: string[] = [
        "# ENISA IoT technical measures: the Bulwark matrix",
        "",
        "Generated by `npm run enisa` from `enisa/gp-tm.tsv` (ENISA, Baseline Security",
        "Recommendations for IoT, 2017, section 4.3), `enisa/mapping.json` and the names of the",
        "tests that carry each measure id. Do not edit by hand: `npm test` fails when it is stale.",
        "",
        "Status: **implemented** (tests named after the measure prove it on the sim target),",
        "**partial** (what is missing is said), **hardware/platform** (what the board must provide,",
        "and where the docs say how to enable it), **organisational** (a process the product team",
        "runs).",
        "",
        "| status | measures |",
        "|---|---|",
        ...STATUSES.map((s) => `| ${s} | ${counts.get(s) ?? 0} |`),
        "",
    ]
    let section = ""
    for (const m of inputs.measures) {
        if (m.section !== section) {
            section = m.section
            lines.push(`## ${section} ${inputs.sections.get(section) ?? ""}`.trimEnd(), "")
        }
        const row = inputs.mapping[m.id]
        lines.push(`### ${m.id}: ${row ? row.status : "NO ROW"}`, "", `> ${cell(m.text)}`, "")
        if (!row) continue
        if (row.modules.length) lines.push(`- Modules: ${row.modules.map((x) => "`" + x + "`").join(", ")}`)
        if (row.missing) lines.push(`- ${row.status === "partial" ? "Missing" : "Needs"}: ${cell(row.missing)}`)
        lines.push(`- Sim: ${cell(row.sim)}`, `- Device (DeviceScript): ${cell(row.device)}`)
        const tests = inputs.tests.get(m.id) ?? []
        if (tests.length) {
            lines.push(`- Tests (${tests.length}):`)
            for (const t of tests.slice().sort()) lines.push(`  - ${cell(t)}`)
        }
        lines.push("")
    }
    return lines.join("\n")
}

export const MATRIX_PATH = resolve(PACKAGE_ROOT, "docs/enisa.md")

export function writeMatrix(root = PACKAGE_ROOT): string {
    const text = renderMatrix(loadInputs(root))
    writeFileSync(join(root, "docs/enisa.md"), text)
    return text
}

interface VitestJson {
    numPassedTests: number
    numFailedTests: number
    numPendingTests: number
    testResults: { assertionResults: { fullName: string; title: string; status: string }[] }[]
}

/**
 * The check after a test run: every implemented or partial measure has at least one
 * *passing* test naming it in vitest's JSON results.
 */
export function resultProblems(inputs: MatrixInputs, results: VitestJson): string[] {
    const passing = new Set<string>()
    for (const file of results.testResults)
        for (const a of file.assertionResults)
            if (a.status === "passed") for (const id of idsInName(a.fullName)) passing.add(id)
    const problems: string[] = []
    for (const m of inputs.measures) {
        const row = inputs.mapping[m.id]
        if (row && (row.status === "implemented" || row.status === "partial") && !passing.has(m.id))
            problems.push(`${m.id} is ${row.status} but no passing test names it`)
    }
    return problems
}

export function runEnisaCli(argv: string[]): number {
    if (argv[0] === "check") {
        const inputs = loadInputs()
        const problems = matrixProblems(inputs)
        const resultsPath = argv[1]
        let summary = ""
        if (resultsPath) {
            const results = JSON.parse(readFileSync(resultsPath, "utf8")) as VitestJson
            problems.push(...resultProblems(inputs, results))
            summary = `${results.numPassedTests} passed, ${results.numFailedTests} failed, ${results.numPendingTests} skipped`
        }
        if (readFileSync(MATRIX_PATH, "utf8") !== renderMatrix(inputs))
            problems.push("docs/enisa.md is stale: run npm run enisa")
        for (const p of problems) process.stderr.write(`enisa: ${p}\n`)
        process.stdout.write(`enisa: ${inputs.measures.length} measures, ${problems.length} problems\n`)
        if (summary) process.stdout.write(`tests: ${summary}\n`)
        return problems.length === 0 ? 0 : 1
    }
    writeMatrix()
    process.stdout.write(`wrote ${relative(process.cwd(), MATRIX_PATH)}\n`)
    return 0
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(PACKAGE_ROOT, "tools/enisa.ts"))
    process.exitCode = runEnisaCli(process.argv.slice(2))
