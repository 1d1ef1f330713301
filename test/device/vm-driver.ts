/**
 * Drives DeviceScript's VM from Node (docs/device.md, "Test vectors"): generates a program
 * that embeds the vector sets (the VM has no file system) and registers a wrapper for every
 * function they call, runs it with `devs run --test` on a staged copy of the sources in a
 * private work directory (tools/device-common.ts), and parses the outcomes it prints. The
 * program also starts the device entry (src/device.ts) with the shipped profile, so a
 * device that would refuse to start fails the test too.
 */

import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { plain, portableModules, runDevs, stageSources } from "../../tools/device-common"
import { callKey, runsOn, VectorCase } from "../vectors/codec"
import { LoadedSet, REPO_ROOT } from "../vectors/node-runner"

export interface VmRun {
    /** Outcome text per "<file>#<case index>". */
    outcomes: Map<string, string>
    /** Cases the VM reported running (BWV-END lines, summed over batches). */
    count: number
    /** Every batch printed its BWV-END line. */
    ended: boolean
    /** The device entry's answer: "ok" or the refusal. */
    deviceStart: string
    /** Highest exit code of the batches (0 when every batch ended with "test OK"). */
    exitCode: number
    timedOut: boolean
    batches: number
    log: string
}

/** Cases of one set in one VM program: the set's file, module and a run of its cases. */
export interface Slice {
    file: string
    module: string
    first: number
    cases: VectorCase[]
}

/**
 * Embedded JSON per VM program. The VM aborts on a program image near 125 KB, and the
 * compiler corrupts one string literal past about 32 KB, so cases are embedded one JSON text
 * each, without names or expectations (Node compares), in batches of at most this size;
 * runVectorsInVm splits a batch again when its program still does not load.
 */
const BATCH_JSON_BYTES = 32_000

function embedded(c: VectorCase): string {
    const carried: Record<string, unknown> = { call: c.call, args: c.args }
    if (c.pick) carried.pick = c.pick
    return JSON.stringify(carried)
}

/** Splits the sets into slices and the slices into batches that fit one VM program. */
export function batches(sets: LoadedSet[]): Slice[][] {
    const out: Slice[][] = []
    let batch: Slice[] = []
    let size = 0
    for (const { file, set } of sets) {
        let slice: Slice | null = null
        set.cases.forEach((c, i) => {
            const bytes = embedded(c).length
            if (size + bytes > BATCH_JSON_BYTES && size > 0) {
                out.push(batch)
                batch = []
                size = 0
                slice = null
            }
            if (slice === null) {
                slice = { file, module: set.module, first: i, cases: [] }
                batch.push(slice)
            }
            slice.cases.push(c)
            size += bytes
        })
    }
    if (batch.length > 0) out.push(batch)
    return out
}

/** Repository files a VM program needs next to it (see stageSources). */
export function vmProgramFiles(): string[] {
    const program = readdirSync(join(REPO_ROOT, "test/device/program"))
        .filter((f) => f.endsWith(".ts"))
        .map((f) => "test/device/program/" + f)
    return [...portableModules(REPO_ROOT), "src/device.ts", "test/vectors/codec.ts", ...program]
}

/** The VM program for one batch; `startDevice` adds the device-entry check. */
export function vmProgramSource(batch: Slice[], startDevice: boolean): string {
    const rel = (file: string) => "./" + file.replace(/\.ts$/, "")
    const imports: string[] = []
    const registrations: string[] = []
    const aliases = new Map<string, string>()
    const byModule = new Map<string, string[]>()
    const seen = new Set<string>()

    for (const slice of batch) {
        for (const c of slice.cases) {
            const key = callKey(slice.module, c)
            if (seen.has(key)) continue
            seen.add(key)
            const args = c.args.map((_, i) => `a[${i}]`).join(", ")
            const target = (name: string) =>
                `CALLS[${JSON.stringify(key)}] = async (a: any[]) => await ${name}(${args})`
            if (slice.module === "$crypto") {
                registrations.push(target(`ENV.crypto.${c.call}`))
                continue
            }
            const id = `${slice.module}#${c.call}`
            let alias = aliases.get(id)
            if (alias === undefined) {
                alias = `f${aliases.size}`
                aliases.set(id, alias)
                const list = byModule.get(slice.module) ?? []
                list.push(`${c.call} as ${alias}`)
                byModule.set(slice.module, list)
            }
            registrations.push(target(alias))
        }
    }
    for (const [module, names] of byModule)
        imports.push(`import { ${names.join(", ")} } from "${rel(module + ".ts")}"`)

    const profile = readFileSync(join(REPO_ROOT, "devs.config.json"), "utf8").trim()
    const start = startDevice
        ? [
              `const PROFILE: any = ${profile}`,
              "const started = await startDevice(PROFILE, (line: string) => console.log(line))",
              'console.log("BWV-START " + (started.ok ? "ok" : started.refusal))',
          ]
        : []
    return [
        "// Generated by test/device/vm-driver.ts; do not edit.",
        'import * as ds from "@devicescript/core"',
        `import { DeviceCrypto } from "${rel("hal/devicescript/crypto.ts")}"`,
        `import { slhDsaVerify } from "${rel("boot/slhdsa.ts")}"`,
        `import { startDevice } from "${rel("src/device.ts")}"`,
        `import { runVectorSets } from "${rel("test/device/program/runner.ts")}"`,
        ...imports,
        "",
        "const ENV = { crypto: new DeviceCrypto(slhDsaVerify) }",
        "const CALLS: any = {}",
        ...registrations,
        "const SETS: any[] = []",
        ...batch.flatMap((s) => [
            `SETS.push({ id: ${JSON.stringify(s.file)}, module: ${JSON.stringify(s.module)}, ` +
                `first: ${s.first}, cases: [`,
            ...s.cases.map((c) => "    " + JSON.stringify(embedded(c)) + ","),
            "] })",
        ]),
        "",
        "await runVectorSets(SETS, CALLS, ENV)",
        ...start,
        "ds.restart()",
        "",
    ].join("\n")
}

/** Parses the "BWV" lines of a VM log. */
export function parseVmLog(log: string): {
    outcomes: Map<string, string>
    count: number
    ended: boolean
    deviceStart: string
} {
    const parts = new Map<string, string[]>()
    let count = 0
    let ended = false
    let deviceStart = ""
    for (const raw of plain(log).split("\n")) {
        const at = raw.indexOf("BWV")
        if (at < 0) continue
        const line = raw.slice(at)
        let m = /^BWV (\S+) (\d+)\/(\d+) (.*)$/.exec(line)
        if (m) {
            const list = parts.get(m[1]) ?? new Array<string>(Number(m[3])).fill("")
            list[Number(m[2]) - 1] = m[4]
            parts.set(m[1], list)
            continue
        }
        m = /^BWV-END (\d+)$/.exec(line)
        if (m) {
            ended = true
            count = Number(m[1])
            continue
        }
        m = /^BWV-START (.*)$/.exec(line)
        if (m) deviceStart = m[1]
    }
    const outcomes = new Map<string, string>()
    for (const [id, list] of parts) outcomes.set(id, list.join(""))
    return { outcomes, count, ended, deviceStart }
}

/** Splits a batch in two: by slices, or a lone slice by its cases; null if it is one case. */
export function halves(batch: Slice[]): [Slice[], Slice[]] | null {
    if (batch.length > 1) {
        const mid = Math.ceil(batch.length / 2)
        return [batch.slice(0, mid), batch.slice(mid)]
    }
    const only = batch[0]
    if (only.cases.length < 2) return null
    const mid = Math.ceil(only.cases.length / 2)
    return [
        [{ ...only, cases: only.cases.slice(0, mid) }],
        [{ ...only, first: only.first + mid, cases: only.cases.slice(mid) }],
    ]
}

/** The VM aborts at load, before printing anything, when the program image is too large. */
function tooLarge(log: string, parsed: ReturnType<typeof parseVmLog>): boolean {
    return parsed.outcomes.size === 0 && !parsed.ended && /Aborted\(/.test(log)
}

/** VM programs run at once: each spends much of its time waiting on the VM's timers. */
const PARALLEL_RUNS = 2

/**
 * Runs the sets that run on "vm", one VM program per batch, two at a time (each
 * `devs run --test` is bounded by `timeoutMs`), and merges what they printed. A batch whose
 * program is too large for the VM (its code grows with the modules the sets call) is split
 * in two and run again.
 */
export async function runVectorsInVm(
    sets: LoadedSet[],
    workDir: string,
    timeoutMs: number
): Promise<VmRun> {
    const queue = batches(sets.filter((s) => runsOn(s.set, "vm"))).map((batch, i) => ({
        batch,
        start: i === 0,
    }))
    const result: VmRun = {
        outcomes: new Map(),
        count: 0,
        ended: true,
        deviceStart: "",
        exitCode: 0,
        timedOut: false,
        batches: 0,
        log: "",
    }
    let next = 0
    const worker = async () => {
        for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
            const n = next++
            const dir = join(workDir, `batch-${n}`)
            stageSources(REPO_ROOT, dir, vmProgramFiles())
            writeFileSync(join(dir, "main.ts"), vmProgramSource(item.batch, item.start))
            const args = ["run", "main.ts", "--test", "--test-self-exit", "-T", String(timeoutMs)]
            const run = await runDevs([...args, "--ignore-missing-config"], dir, timeoutMs + 60_000)
            const log = plain(run.stdout + run.stderr)
            const parsed = parseVmLog(log)
            const split = tooLarge(log, parsed) ? halves(item.batch) : null
            if (split !== null) {
                const [first, second] = split
                queue.unshift({ batch: first, start: item.start }, { batch: second, start: false })
                continue
            }
            result.batches++
            for (const [id, text] of parsed.outcomes) result.outcomes.set(id, text)
            result.count += parsed.count
            result.ended = result.ended && parsed.ended
            if (item.start) result.deviceStart = parsed.deviceStart
            result.exitCode = Math.max(result.exitCode, run.code)
            result.timedOut = result.timedOut || run.timedOut
            const ok = run.code === 0 && parsed.ended
            result.log += `--- batch ${n} (${ok ? "ok" : "failed"})\n` + log
        }
    }
    const workers: Promise<void>[] = []
    for (let i = 0; i < PARALLEL_RUNS; i++) workers.push(worker())
    await Promise.all(workers)
    return result
}
