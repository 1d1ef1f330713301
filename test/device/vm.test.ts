/**
 * The shared test vectors in DeviceScript's VM (`devs run --test`), compared with Node: every
 * case must have the same outcome on both targets and the expected one (docs/device.md).
 * One VM run covers every set; it is bounded by VM_TIMEOUT_MS. `npm run test:device`.
 */

import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectedOutcome, runsOn } from "../vectors/codec"
import { loadVectorSets, nodeEnv, runSetOnNode } from "../vectors/node-runner"
import { runVectorsInVm, VmRun } from "./vm-driver"

/** The VM's own test timeout; --test turns on GC stress, so this is generous. */
const VM_TIMEOUT_MS = 150_000

const sets = loadVectorSets()
let workDir = ""
let vm: VmRun

beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "bulwark-vm-"))
    vm = await runVectorsInVm(sets, workDir, VM_TIMEOUT_MS)
}, VM_TIMEOUT_MS + 90_000)

afterAll(() => {
    if (workDir !== "") rmSync(workDir, { recursive: true, force: true })
})

/** The end of each failed batch's log (where the VM says why), for assertion messages. */
function vmFailure(): string {
    const failed = vm.log.split("--- batch ").filter((b) => /^\d+ \(failed\)/.test(b))
    const shown = failed.length > 0 ? failed : [vm.log]
    const tail = (b: string) => b.split("\n").filter((l) => !l.includes("BWV ")).slice(-25)
    return shown.map((b) => tail(b).join("\n")).join("\n")
}

describe("DeviceScript VM", () => {
    it("runs every vector case and exits with test OK", () => {
        const expected = sets
            .filter((s) => runsOn(s.set, "vm"))
            .reduce((n, s) => n + s.set.cases.length, 0)

        expect(vm.timedOut, vmFailure()).toBe(false)
        expect(vm.ended, vmFailure()).toBe(true)
        expect(vm.count).toBe(expected)
        expect(vm.exitCode, vmFailure()).toBe(0)
    })

    it("GP-TM-16: starts the device entry with the shipped profile (self-test passes)", () => {
        expect(vm.deviceStart, vmFailure()).toBe("ok")
    })

    for (const { file, set } of sets.filter((s) => runsOn(s.set, "vm"))) {
        it(`${file}: each case has the expected outcome in the VM`, () => {
            const got = set.cases.map((c, i) => `${c.name}: ${vm.outcomes.get(`${file}#${i}`)}`)
            const want = set.cases.map((c) => `${c.name}: ${expectedOutcome(c)}`)

            expect(got).toEqual(want)
        })

        if (!runsOn(set, "node")) continue
        it(`${file}: the VM and Node agree on every case`, async () => {
            const node = await runSetOnNode(set, nodeEnv())

            const got = set.cases.map((c, i) => `${c.name}: ${vm.outcomes.get(`${file}#${i}`)}`)
            const want = set.cases.map((c, i) => `${c.name}: ${node[i]}`)
            expect(got).toEqual(want)
        })
    }
})
