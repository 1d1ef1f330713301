/**
 * The shared test-vector format "bulwark-vectors/1" (docs/device.md, "Test vectors"): decodes
 * a case's arguments, runs it and renders the outcome as one canonical string. This file is
 * compiled both by Node (test/vectors.test.ts) and by DeviceScript (test/device/program), so
 * it keeps to the portable subset and renders numbers itself: the VM prints floats lossily.
 *
 * Arguments: JSON values, where {"$hex": "..."} is a Buffer, {"$utf8": "..."} a Buffer of the
 * text, {"$repeat": ["aa", 131]} a Buffer of a repeated hex pattern, {"$zeros": n} n zero
 * bytes and {"$crypto": true} the target's Crypto (the sim's on Node, the device's in the VM).
 * Expected values use the same tags; {"$undefined": true} stands for undefined.
 * Outcome: {"ok": value} or {"throws": {name, code?, check?, field?, capability?}}, Buffers
 * as {"$hex": "..."}, integers exact, other numbers as {"$approx6": round(n * 1e6)}.
 */

import { Crypto } from "../../hal/crypto"

export const VECTOR_FORMAT = "bulwark-vectors/1"

export interface VectorCase {
    name: string
    /** Exported function of `module`, or a Crypto method when the module is "$crypto". */
    call: string
    args: any[]
    expect?: any
    throws?: any
    /**
     * Dotted paths of the result to compare ("flash.partitions"), so a vector survives a
     * field added to a large result; the outcome is then {path: value} in path order.
     */
    pick?: string[]
}

export interface VectorSet {
    format: string
    /** Repository path without ".ts" ("boot/bytes"), or "$crypto". */
    module: string
    description: string
    source: string
    /** Where the set runs: "node" and/or "vm" (both when absent). */
    targets?: string[]
    cases: VectorCase[]
}

export interface VectorEnv {
    crypto: Crypto
}

const HEX = "0123456789abcdef"

function repeatHex(pattern: string, count: number): Buffer {
    let text = ""
    for (let i = 0; i < count; i++) text = text + pattern
    return Buffer.from(text, "hex")
}

/** Turns a JSON argument (or expected value) into the value it stands for. */
export function decodeArg(value: any, env: VectorEnv | null): any {
    if (value === null || typeof value !== "object") return value
    if (Array.isArray(value)) {
        const list: any[] = []
        for (let i = 0; i < value.length; i++) list.push(decodeArg(value[i], env))
        return list
    }
    const keys = Object.keys(value)
    if (keys.length === 1) {
        const tag = keys[0]
        if (tag === "$hex") return Buffer.from(value["$hex"], "hex")
        if (tag === "$utf8") return Buffer.from(value["$utf8"])
        if (tag === "$zeros") return Buffer.alloc(value["$zeros"])
        if (tag === "$repeat") return repeatHex(value["$repeat"][0], value["$repeat"][1])
        if (tag === "$crypto" && env !== null) return env.crypto
    }
    const out: any = {}
    for (let i = 0; i < keys.length; i++) out[keys[i]] = decodeArg(value[keys[i]], env)
    return out
}

function digits(n: number): string {
    if (n === 0) return "0"
    let text = ""
    let rest = n
    while (rest > 0) {
        const q = Math.floor(rest / 10)
        text = HEX[rest - q * 10] + text
        rest = q
    }
    return text
}

function renderNumber(n: number): string {
    if (n !== n) return '{"$num":"NaN"}'
    if (n === Infinity) return '{"$num":"Infinity"}'
    if (n === -Infinity) return '{"$num":"-Infinity"}'
    const whole = Math.floor(n) === n && n < 9007199254740992 && n > -9007199254740992
    if (!whole) return '{"$approx6":' + renderNumber(Math.round(n * 1000000)) + "}"
    return n < 0 ? "-" + digits(-n) : digits(n)
}

function renderString(s: string): string {
    let out = '"'
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i)
        if (c === 0x22) out = out + '\\"'
        else if (c === 0x5c) out = out + "\\\\"
        else if (c >= 0x20 && c < 0x7f) out = out + s[i]
        else {
            out = out + "\\u"
            for (let shift = 12; shift >= 0; shift -= 4) out = out + HEX[(c >> shift) & 15]
        }
    }
    return out + '"'
}

/** a > b by UTF-16 code units; DeviceScript's `>` does not order strings. */
function after(a: string, b: string): boolean {
    const n = a.length < b.length ? a.length : b.length
    for (let i = 0; i < n; i++) {
        const d = a.charCodeAt(i) - b.charCodeAt(i)
        if (d !== 0) return d > 0
    }
    return a.length > b.length
}

function sortedKeys(value: any): string[] {
    const keys = Object.keys(value)
    for (let i = 1; i < keys.length; i++) {
        const key = keys[i]
        let j = i - 1
        while (j >= 0 && after(keys[j], key)) {
            keys[j + 1] = keys[j]
            j--
        }
        keys[j + 1] = key
    }
    return keys
}

/** One canonical text for a value: sorted keys, no spaces, Buffers as {"$hex": ...}. */
export function canonical(value: any): string {
    if (value === undefined) return '{"$undefined":true}'
    if (value === null) return "null"
    if (value === true) return "true"
    if (value === false) return "false"
    if (typeof value === "number") return renderNumber(value)
    if (typeof value === "string") return renderString(value)
    if (value instanceof Buffer) return '{"$hex":' + renderString(value.toString("hex")) + "}"
    if (Array.isArray(value)) {
        let out = "["
        for (let i = 0; i < value.length; i++) out = out + (i > 0 ? "," : "") + canonical(value[i])
        return out + "]"
    }
    if (typeof value === "function") return '{"$function":true}'
    const keys = sortedKeys(value)
    let out = "{"
    for (let i = 0; i < keys.length; i++) {
        if (i > 0) out = out + ","
        out = out + renderString(keys[i]) + ":" + canonical(value[keys[i]])
    }
    return out + "}"
}

/** The stable identity of an error: its name and the typed fields that name the check. */
export function errorSummary(e: any): any {
    const out: any = { name: e && e.name ? "" + e.name : "unknown" }
    if (e && typeof e.code === "string") out.code = e.code
    if (e && typeof e.check === "string") out.check = e.check
    if (e && typeof e.field === "string") out.field = e.field
    if (e && typeof e.capability === "string") out.capability = e.capability
    return out
}

/** The outcome a case expects, rendered canonically ($hex, $utf8, ... decoded first). */
export function expectedOutcome(c: VectorCase): string {
    if (c.throws !== undefined) return canonical({ throws: c.throws })
    return canonical({ ok: decodeArg(c.expect, null) })
}

function at(value: any, path: string): any {
    const steps = path.split(".")
    let here = value
    for (let i = 0; i < steps.length; i++) {
        if (here === null || typeof here !== "object") return undefined
        here = here[steps[i]]
    }
    return here
}

/** The picked paths of a result, or the result itself when the case picks nothing. */
export function picked(c: VectorCase, result: any): any {
    if (!c.pick) return result
    const out: any = {}
    for (let i = 0; i < c.pick.length; i++) out[c.pick[i]] = at(result, c.pick[i])
    return out
}

/** Runs one case through `fn` (which receives the decoded argument list). */
export async function runCase(
    fn: (args: any[]) => any,
    c: VectorCase,
    env: VectorEnv
): Promise<string> {
    try {
        const args = decodeArg(c.args, env)
        const result = await fn(args)
        return canonical({ ok: picked(c, result) })
    } catch (e) {
        return canonical({ throws: errorSummary(e) })
    }
}

/** The key a VM program registers each callable under: module#call/arity. */
export function callKey(module: string, c: VectorCase): string {
    return module + "#" + c.call + "/" + c.args.length
}

/** True when the set runs on `target` ("node" or "vm"). */
export function runsOn(set: VectorSet, target: string): boolean {
    if (!set.targets) return true
    return set.targets.indexOf(target) >= 0
}
