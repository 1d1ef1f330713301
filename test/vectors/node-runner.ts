/**
 * Loads the shared vector sets (test/vectors/*.json in format "bulwark-vectors/1") and runs
 * them on Node against the sim's Crypto, producing the same canonical outcomes the
 * DeviceScript VM prints (test/device/vm-driver.ts), so the two can be compared line by line.
 * JSON files in other formats (other suites' data) are left alone.
 */

import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { SimCrypto } from "../../sim/crypto"
import { runCase, runsOn, VECTOR_FORMAT, VectorEnv, VectorSet } from "./codec"

export const VECTORS_DIR = dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = join(VECTORS_DIR, "..", "..")

export interface LoadedSet {
    /** File name inside test/vectors/. */
    file: string
    set: VectorSet
}

function isString(value: unknown): boolean {
    return typeof value === "string"
}

function fail(file: string, message: string): never {
    throw new Error(`test/vectors/${file}: ${message}`)
}

/** Checks the shape of a set so a typo fails loudly instead of running nothing. */
export function checkSet(file: string, set: any): VectorSet {
    if (typeof set.module !== "string" || set.module === "") fail(file, "no module")
    if (typeof set.description !== "string" || typeof set.source !== "string")
        fail(file, "description and source are required")
    if (set.module !== "$crypto" && !existsSync(join(REPO_ROOT, set.module + ".ts")))
        fail(file, `module ${set.module}.ts does not exist`)
    if (!Array.isArray(set.cases) || set.cases.length === 0) fail(file, "no cases")
    const names = new Set<string>()
    for (const c of set.cases) {
        if (typeof c.name !== "string" || c.name === "") fail(file, "a case has no name")
        if (names.has(c.name)) fail(file, `duplicate case name "${c.name}"`)
        names.add(c.name)
        if (typeof c.call !== "string" || !Array.isArray(c.args))
            fail(file, `case "${c.name}" needs call and args`)
        const paths = c.pick === undefined || (Array.isArray(c.pick) && c.pick.every(isString))
        if (!paths) fail(file, `case "${c.name}" has a pick that is not a list of paths`)
        if ((c.expect === undefined) === (c.throws === undefined))
            fail(file, `case "${c.name}" needs exactly one of expect and throws`)
    }
    return set as VectorSet
}

/** Every vector set, sorted by file name. */
export function loadVectorSets(dir: string = VECTORS_DIR): LoadedSet[] {
    const out: LoadedSet[] = []
    for (const file of readdirSync(dir).sort()) {
        if (!file.endsWith(".json")) continue
        const json = JSON.parse(readFileSync(join(dir, file), "utf8"))
        if (json === null || typeof json !== "object" || json.format !== VECTOR_FORMAT) continue
        out.push({ file, set: checkSet(file, json) })
    }
    return out
}

export function nodeEnv(): VectorEnv {
    return { crypto: new SimCrypto() }
}

/** The callable for a case on Node: the module's export, or a method of the env Crypto. */
async function resolveCall(set: VectorSet, call: string, env: VectorEnv) {
    if (set.module === "$crypto") {
        const crypto = env.crypto as any
        if (typeof crypto[call] !== "function") throw new Error(`Crypto has no method ${call}`)
        return (args: any[]) => crypto[call](...args)
    }
    const mod = await import(pathToFileURL(join(REPO_ROOT, set.module + ".ts")).href)
    if (typeof mod[call] !== "function") throw new Error(`${set.module} exports no ${call}`)
    return (args: any[]) => mod[call](...args)
}

/** Outcomes of every case of `set` on Node, in case order. */
export async function runSetOnNode(set: VectorSet, env: VectorEnv): Promise<string[]> {
    const outcomes: string[] = []
    for (const c of set.cases) {
        const fn = await resolveCall(set, c.call, env)
        outcomes.push(await runCase(fn, c, env))
    }
    return outcomes
}

export function nodeSets(sets: LoadedSet[]): LoadedSet[] {
    return sets.filter((s) => runsOn(s.set, "node"))
}
