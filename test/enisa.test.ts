/**
 * The ENISA matrix checks itself (tools/enisa.ts): all 57 measures have a row, every
 * implemented or partial measure has a test naming it, and docs/enisa.md is current. The
 * check after the whole run (tools/run-tests.ts) adds: that test passed.
 */

import { readFileSync } from "node:fs"
import { resolve } from "node:path"

import { describe, expect, it } from "vitest"

import { idsInName, loadInputs, matrixProblems, renderMatrix, resultProblems } from "../tools/enisa"

const inputs = loadInputs()

describe("ENISA matrix", () => {
    it("has a row with a known status for each of the 57 measures, and a test for each claim", () => {
        expect(inputs.measures).toHaveLength(57)
        expect(matrixProblems(inputs)).toEqual([])
    })

    it("docs/enisa.md is the generated matrix (run npm run enisa when this fails)", () => {
        const onDisk = readFileSync(resolve(__dirname, "../docs/enisa.md"), "utf8")

        expect(onDisk === renderMatrix(inputs)).toBe(true)
    })

    it("fails when a measure's row is removed from the mapping", () => {
        const mapping = { ...inputs.mapping }
        delete mapping["GP-TM-25"]

        expect(matrixProblems({ ...inputs, mapping })).toContain("GP-TM-25 has no row in enisa/mapping.json")
    })

    it("fails when an implemented measure has no test naming it", () => {
        const tests = new Map(inputs.tests)
        tests.delete("GP-TM-46")

        expect(matrixProblems({ ...inputs, tests })).toContain(
            "GP-TM-46 is implemented but no test name carries its id"
        )
    })

    it("fails when the only tests naming a measure did not pass", () => {
        const results = {
            numPassedTests: 1,
            numFailedTests: 1,
            numPendingTests: 0,
            testResults: [
                {
                    assertionResults: [
                        { fullName: "GP-TM-25: locks the console", title: "", status: "failed" },
                        { fullName: "GP-TM-24: hashes", title: "", status: "passed" },
                    ],
                },
            ],
        }

        const problems = resultProblems(inputs, results)

        expect(problems).toContain("GP-TM-25 is implemented but no passing test names it")
        expect(problems).not.toContain("GP-TM-24 is implemented but no passing test names it")
    })

    it("reads every id a test name carries, including the GP-TM-22/23 form", () => {
        expect(idsInName("GP-TM-22/23: refuses default passwords").sort()).toEqual(["GP-TM-22", "GP-TM-23"])
        expect(idsInName("GP-TM-06: x; also GP-TM-16")).toEqual(["GP-TM-06", "GP-TM-16"])
        expect(idsInName("no measure here")).toEqual([])
    })
})
