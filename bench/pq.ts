/**
 * Benchmark of SLH-DSA-SHA2-128s verification (FIPS 205; issue 8): the portable verifier
 * (boot/slhdsa.ts on SimCrypto's SHA-256) next to @noble/post-quantum in the same run, the
 * SHA-256 calls and compression blocks of one verification, Node's raw SHA-256 over the same
 * inputs as the floor, and the verifier in DeviceScript's VM driven from Node without the test
 * mode's GC stress (bench/pq-vm.ts). Run: `npm run bench:pq` (`--json` for machine output,
 * `--no-vm` to skip the VM, `--vm-gc-stress` to also time the VM with GC stress on).
 */

import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { createHash } from "node:crypto"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { slhDsaVerify, slhDsaVerifyInternal } from "../boot/slhdsa"
import { Crypto } from "../hal/crypto"
import { SimCrypto } from "../sim/crypto"
import { timeInVm, VmTiming } from "./pq-vm"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
const VECTORS = JSON.parse(
    readFileSync(join(ROOT, "test/vectors/slhdsa-sha2-128s.json"), "utf8")
)

interface Genuine {
    name: string
    internal: boolean
    publicKey: Buffer
    message: Buffer
    context: Buffer
    signature: Buffer
}

const genuine: Genuine[] = VECTORS.signatures.map((s: Record<string, string | number>) => ({
    name: s.name,
    internal: s.interface === "internal",
    publicKey: Buffer.from(VECTORS.keys[s.key as number].publicKey, "hex"),
    message: Buffer.from(s.message as string, "hex"),
    context: Buffer.from(s.context as string, "hex"),
    signature: Buffer.from(s.signature as string, "hex"),
}))

/** SimCrypto that records the inputs of every sha256 call (to replay and count blocks). */
class RecordingCrypto extends SimCrypto {
    calls: Buffer[][] = []
    override sha256(parts: Buffer[]): Buffer {
        this.calls.push(parts.map((p) => Buffer.from(p)))
        return super.sha256(parts)
    }
}

function portable(crypto: Crypto, g: Genuine): Promise<boolean> {
    if (g.internal) return slhDsaVerifyInternal(crypto, g.publicKey, g.message, g.signature)
    return slhDsaVerify(crypto, g.publicKey, g.message, g.signature, { context: g.context })
}

function noble(g: Genuine): boolean {
    if (g.internal) return slh_dsa_sha2_128s.internal.verify(g.signature, g.message, g.publicKey)
    return slh_dsa_sha2_128s.verify(g.signature, g.message, g.publicKey, { context: g.context })
}

/** SHA-256 compression blocks of one message: 64-byte blocks after 9 bytes of padding. */
function blocks(parts: Buffer[]): number {
    const length = parts.reduce((n, p) => n + p.length, 0)
    return Math.ceil((length + 9) / 64)
}

/** Mean milliseconds of one call, after a tenth as many untimed warm-up calls. */
async function timeAsync(rounds: number, fn: () => Promise<unknown>): Promise<number> {
    for (let i = 0; i < rounds / 10; i++) await fn()
    const start = process.hrtime.bigint()
    for (let i = 0; i < rounds; i++) await fn()
    return Number(process.hrtime.bigint() - start) / 1e6 / rounds
}

function timeSync(rounds: number, fn: () => unknown): number {
    for (let i = 0; i < rounds / 10; i++) fn()
    const start = process.hrtime.bigint()
    for (let i = 0; i < rounds; i++) fn()
    return Number(process.hrtime.bigint() - start) / 1e6 / rounds
}

async function main(): Promise<void> {
    const json = process.argv.includes("--json")
    const rounds = 100
    const sim = new SimCrypto()

    // Warm up both verifiers and check every genuine vector verifies before timing anything.
    for (const g of genuine) {
        if (!(await portable(sim, g)) || !noble(g)) throw new Error("vector does not verify")
    }

    const rows = []
    for (const g of genuine) {
        const recorder = new RecordingCrypto()
        await portable(recorder, g)
        const calls = recorder.calls.length
        const compressions = recorder.calls.reduce((n, parts) => n + blocks(parts), 0)

        const portableMs = await timeAsync(rounds, () => portable(sim, g))
        const nobleMs = timeSync(rounds, () => noble(g))
        const rawMs = timeSync(rounds, () => {
            for (const parts of recorder.calls) {
                const h = createHash("sha256")
                for (const p of parts) h.update(p)
                h.digest()
            }
        })
        rows.push({
            vector: g.name,
            sha256Calls: calls,
            compressions,
            // One block per call is the padded PK.seed; a mid-state API would skip it.
            compressionsWithMidstate: compressions - (calls - 2),
            portableMs: +portableMs.toFixed(3),
            nobleMs: +nobleMs.toFixed(3),
            ratioPortableToNoble: +(portableMs / nobleMs).toFixed(2),
            rawSha256Ms: +rawMs.toFixed(3),
            ratioPortableToRawSha256: +(portableMs / rawMs).toFixed(2),
        })
    }

    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const nodePortableMs = mean(rows.map((r) => r.portableMs))
    const nodeNobleMs = mean(rows.map((r) => r.nobleMs))
    const vm = process.argv.includes("--no-vm") ? null : await vmSummary(false)
    const vmStress = process.argv.includes("--vm-gc-stress") ? await vmSummary(true) : null
    const vmRatio = (s: VmSummary | null) =>
        s && s.msPerVerification !== null
            ? {
                  ratioVmToNodePortable: +(s.msPerVerification / nodePortableMs).toFixed(1),
                  ratioVmToNodeNoble: +(s.msPerVerification / nodeNobleMs).toFixed(1),
              }
            : {}

    if (json) {
        const out = {
            bench: "pq",
            rounds,
            rows,
            nodePortableMs: +nodePortableMs.toFixed(3),
            nodeNobleMs: +nodeNobleMs.toFixed(3),
            vm: vm && { ...vm, ...vmRatio(vm) },
            vmGcStress: vmStress && { ...vmStress, ...vmRatio(vmStress) },
        }
        process.stdout.write(JSON.stringify(out, null, 2) + "\n")
    } else {
        const node = `Node ${process.version}, ${rounds} rounds each`
        console.log(`SLH-DSA-SHA2-128s verification, ${node}`)
        console.table(rows)
        for (const s of [vm, vmStress]) if (s) printVm(s, nodePortableMs, nodeNobleMs)
    }
    if ((vm && !vm.ok) || (vmStress && !vmStress.ok)) process.exitCode = 1
}

type VmSummary = Omit<VmTiming, "log" | "timedOut"> & { gcStress: boolean }

/** One VM run (bounded: 4 verifications, 120 s); the log is printed only when it failed. */
async function vmSummary(gcStress: boolean): Promise<VmSummary> {
    const run = await timeInVm({ gcStress, timeoutMs: 120_000 })
    if (!run.ok || run.gcStressOff === gcStress) {
        console.error(`DeviceScript VM run failed${run.timedOut ? " (timeout)" : ""}:`)
        console.error(run.log)
    }
    // The preload must have turned the stress off, or the numbers are the stressed ones.
    const ok = run.ok && run.gcStressOff !== gcStress
    return {
        gcStress,
        ok,
        gcStressOff: run.gcStressOff,
        cases: run.cases,
        msPerVerification: run.msPerVerification,
        wallMs: run.wallMs,
    }
}

function printVm(s: VmSummary, nodePortableMs: number, nodeNobleMs: number): void {
    const stress = s.gcStress ? "GC stress ON (devs test mode)" : "GC stress off (preload)"
    console.log(
        `\nDeviceScript VM 2.16.4 in Node (devs run --test), ${stress}, ` +
            `one run of each case timed with ds.millis():`
    )
    console.table(
        s.cases.map((c) => ({
            vector: c.name,
            expected: c.expected ? "accept" : "refuse",
            verdict: c.verdict === null ? "none" : c.verdict ? "accept" : "refuse",
            vmMs: c.ms,
        }))
    )
    if (s.msPerVerification === null) {
        console.log("VM: no verification finished")
        return
    }
    const per = s.msPerVerification
    console.log(
        `VM: ${per.toFixed(0)} ms per verification; ` +
            `Node portable ${nodePortableMs.toFixed(2)} ms ` +
            `(VM/Node ${(per / nodePortableMs).toFixed(0)}x), noble ${nodeNobleMs.toFixed(2)} ms ` +
            `(VM/noble ${(per / nodeNobleMs).toFixed(0)}x); whole devs run ${s.wallMs} ms` +
            (s.ok ? "" : "; VERDICTS OR GC-STRESS CHECK FAILED")
    )
}

main().catch((error) => {
    console.error(error)
    process.exitCode = 1
})
