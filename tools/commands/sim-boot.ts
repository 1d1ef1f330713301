/**
 * `bulwark sim boot --dir DEV [--run] --json`: powers the simulated board on and runs the
 * verified-boot stub once (GP-TM-03, GP-TM-04), reporting the decision: which slot booted,
 * its version, whether it is a trial boot, and why each refused slot was refused. With
 * --run the verified payload is loaded and the app reports what it is. Exit 0 when an image
 * booted, 1 when the board is in recovery (nothing verified), 2 for bad usage.
 */

import { resolve } from "node:path"

import { currentBootState, runBootStub } from "../../boot/stub"
import { loadAppBundle } from "../../sim/loader"
import { EXIT_OK, EXIT_REFUSED, hasFlag, parseArgs, requireFlag } from "../args"
import { registerCommands } from "../cli"
import { openBoard } from "../command-helpers"

registerCommands([
    {
        words: ["sim", "boot"],
        usage: "sim boot --dir DEV [--run] [--json]",
        summary: "power the board on, run the boot stub once and report its decision",
        async run(argv) {
            const args = parseArgs(argv, ["dir"], ["json", "run"])
            const board = await openBoard(resolve(requireFlag(args, "dir")))
            const profile = board.profile
            const run = hasFlag(args, "run")
            try {
                const decision = await runBootStub(
                    board,
                    {
                        deviceClass: profile.deviceClass,
                        trialAttempts: profile.boot.trialAttempts,
                        signaturePolicy: profile.boot.signaturePolicy,
                    },
                    run
                )
                const state = await currentBootState(board)
                const result: Record<string, unknown> = {
                    ok: decision.booted !== null,
                    booted: decision.booted,
                    version: decision.version,
                    trial: decision.trial,
                    recovery: decision.recovery,
                    refused: decision.refused,
                    measured: decision.measured,
                    state: { active: state.active, pending: state.pending, attempts: state.attempts },
                    otpCounter: await board.otp.readCounter(),
                }
                if (run && decision.payload && decision.measured) {
                    const app = loadAppBundle(decision.payload)
                    result.app = await app.describeApp({
                        board,
                        profile,
                        measured: decision.measured,
                    })
                }
                if (hasFlag(args, "json")) process.stdout.write(JSON.stringify(result) + "\n")
                else process.stdout.write(describe(result) + "\n")
                return decision.booted !== null ? EXIT_OK : EXIT_REFUSED
            } finally {
                board.close()
            }
        },
    },
])

function describe(result: Record<string, unknown>): string {
    const lines: string[] = []
    if (result.booted) {
        lines.push(`booted slot ${result.booted}: version ${result.version}${result.trial ? " (trial)" : ""}`)
    } else lines.push("recovery: no slot verified; nothing runs")
    for (const r of result.refused as { slot: string; check: string; reason: string }[])
        lines.push(`  slot ${r.slot} refused: ${r.check} (${r.reason})`)
    if (result.app) lines.push(`  app: ${JSON.stringify(result.app)}`)
    return lines.join("\n")
}
