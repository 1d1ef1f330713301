/**
 * The shared test vectors (test/vectors/*.json, format "bulwark-vectors/1") on the sim
 * target: every case's outcome on Node must equal the expected one. test/device/vm.test.ts
 * runs the same sets in DeviceScript's VM and compares both. Adding a set is adding one file.
 */

import { describe, expect, it } from "vitest"
import { canonical, expectedOutcome, runCase } from "./vectors/codec"
import { loadVectorSets, nodeEnv, nodeSets, runSetOnNode } from "./vectors/node-runner"

const sets = loadVectorSets()

describe("shared test vectors", () => {
    it("include the sets of the portable modules and the device HAL", () => {
        const modules = sets.map((s) => s.set.module)

        expect(modules).toEqual(
            expect.arrayContaining([
                "boot/bytes",
                "boot/profile",
                "boot/anchor",
                "$crypto",
                "hal/devicescript/mqtt-codec",
                "hal/devicescript/sealed-settings",
                "hal/devicescript/capabilities",
            ])
        )
    })

    for (const { file, set } of nodeSets(sets)) {
        describe(`${file} (${set.module})`, () => {
            it("has the outcome each case expects on Node", async () => {
                const env = nodeEnv()

                const outcomes = await runSetOnNode(set, env)

                const got = set.cases.map((c, i) => `${c.name}: ${outcomes[i]}`)
                const want = set.cases.map((c) => `${c.name}: ${expectedOutcome(c)}`)
                expect(got).toEqual(want)
            })
        })
    }
})

describe("vector codec", () => {
    it("renders integers above 2^31 exactly and fractions as micro-units", () => {
        expect(canonical(4294967295)).toBe("4294967295")
        expect(canonical(-12)).toBe("-12")
        expect(canonical(0.5)).toBe('{"$approx6":500000}')
    })

    it("renders objects with sorted keys and Buffers as hex", () => {
        expect(canonical({ b: Buffer.from([1, 255]), a: [true, null] })).toBe(
            '{"a":[true,null],"b":{"$hex":"01ff"}}'
        )
    })

    it("reports a thrown typed error by name and check field", async () => {
        const failing = () => {
            const e = new Error("x") as Error & { check: string }
            e.name = "ImageError"
            e.check = "magic"
            throw e
        }

        const outcome = await runCase(failing, { name: "t", call: "f", args: [] }, nodeEnv())

        expect(outcome).toBe('{"throws":{"check":"magic","name":"ImageError"}}')
    })
})
