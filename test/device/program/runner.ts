/**
 * DeviceScript side of the shared test vectors (docs/device.md, "Test vectors"): runs every
 * case with the same codec as Node (test/vectors/codec.ts) and prints each canonical outcome
 * in chunks the VM's console does not truncate, for test/device/vm-driver.ts to compare.
 * Line format: "BWV <set>#<case> <part>/<parts> <text>", then "BWV-END <cases>". The program
 * carries no expectations (they stay on Node, which compares).
 */

import * as ds from "@devicescript/core"
import { callKey, canonical, runCase, VectorCase, VectorEnv } from "../../vectors/codec"

/** The VM's console cuts lines near 300 characters. */
const CHUNK = 160

export function emit(id: string, text: string): void {
    const parts = text.length === 0 ? 1 : Math.ceil(text.length / CHUNK)
    for (let k = 0; k < parts; k++) {
        const piece = text.slice(k * CHUNK, (k + 1) * CHUNK)
        console.log("BWV " + id + " " + (k + 1) + "/" + parts + " " + piece)
    }
}

/** A run of one set's cases as the generated program embeds them, each its own JSON text. */
export interface EmbeddedSet {
    id: string
    module: string
    /** Index of the first case in its set. */
    first: number
    cases: string[]
}

/**
 * Runs every case, calling `calls[module#call/arity]`. Awaits between cases: each case must
 * fit the VM's budget of about 128k bytecode steps between awaits.
 */
export async function runVectorSets(
    sets: EmbeddedSet[],
    calls: any,
    env: VectorEnv
): Promise<number> {
    let count = 0
    for (let s = 0; s < sets.length; s++) {
        const set = sets[s]
        for (let i = 0; i < set.cases.length; i++) {
            const c = JSON.parse(set.cases[i]) as VectorCase
            const key = callKey(set.module, c)
            const fn = calls[key]
            let outcome = ""
            if (fn === undefined) outcome = canonical({ missing: key })
            else outcome = await runCase(fn, c, env)
            emit(set.id + "#" + (set.first + i), outcome)
            count++
            await ds.sleep(0)
        }
    }
    console.log("BWV-END " + count)
    return count
}
