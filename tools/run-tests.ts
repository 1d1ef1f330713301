/**
 * `npm test`: runs the vitest suites, then the ENISA check on their results (every
 * implemented or partial measure has a passing test naming it, docs/enisa.md is current).
 * Arguments are passed to vitest; with a filter the ENISA check is skipped, since a partial
 * run cannot prove the matrix.
 */

import { spawnSync } from "node:child_process"
import { mkdirSync } from "node:fs"
import { join } from "node:path"

import { PACKAGE_ROOT } from "./app-build"
import { runEnisaCli } from "./enisa"

const args = process.argv.slice(2)
const resultsDir = join(PACKAGE_ROOT, ".bulwark")
const resultsPath = join(resultsDir, "test-results.json")
mkdirSync(resultsDir, { recursive: true })

const vitest = spawnSync(
    process.execPath,
    [
        join(PACKAGE_ROOT, "node_modules/vitest/vitest.mjs"),
        "run",
        "--reporter=default",
        "--reporter=json",
        `--outputFile.json=${resultsPath}`,
        ...args,
    ],
    { stdio: "inherit", cwd: PACKAGE_ROOT }
)
if (vitest.status !== 0) process.exit(vitest.status ?? 1)
if (args.some((a) => !a.startsWith("-"))) process.exit(0)
process.exit(runEnisaCli(["check", resultsPath]))
