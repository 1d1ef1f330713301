/**
 * `bulwark sim run --dir DEV --broker HOST:PORT`: runs a provisioned simulated device until
 * SIGINT or SIGTERM (sim/runner.ts): boot stub, verified app, broker session, updates. Each
 * boot and reset is one line on stdout (JSON lines with --json); --verbose adds the app's
 * diagnostic lines on stderr. When the profile enables the console, the device serves it on
 * DEV/console.sock for `bulwark sim console --dir DEV`.
 */

import { existsSync } from "node:fs"
import { join, resolve } from "node:path"

import { hasFlag, parseArgs, requireFlag, UsageError } from "../args"
import { registerCommands } from "../cli"
import { RunnerEvent, startDevice } from "../../sim/runner"
import { parseBroker } from "./ota"

function describe(e: RunnerEvent): string {
    if (e.event === "boot") {
        const b = e.boot
        if (b.recovery) return `boot ${b.index}: recovery (no valid image; waiting for a rescue image)`
        const app = b.app ? ` app=${b.app.app}` : ""
        return `boot ${b.index}: slot ${b.booted} version ${b.version}${b.trial ? " (trial)" : ""}${app}`
    }
    if (e.event === "reset") return `reset after boot ${e.index}: ${e.reason}`
    return `app error in boot ${e.index}: ${e.message}`
}

async function runCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "broker"], ["json", "verbose"])
    if (args.positional.length > 0) throw new UsageError(`unexpected argument ${args.positional[0]}`)
    const dir = resolve(requireFlag(args, "dir"))
    if (!existsSync(join(dir, "board.json"))) throw new UsageError(`not a device directory: ${dir}`)
    const broker = parseBroker(requireFlag(args, "broker"))
    const json = hasFlag(args, "json")
    const device = await startDevice(dir, broker, {
        onEvent: (e) =>
            process.stdout.write((json ? JSON.stringify(e) : describe(e)) + "\n"),
        log: hasFlag(args, "verbose") ? (line) => process.stderr.write(line + "\n") : undefined,
        console: true,
    })
    await new Promise<void>((done) => {
        process.once("SIGINT", () => done())
        process.once("SIGTERM", () => done())
    })
    await device.stop()
    return 0
}

registerCommands([
    {
        words: ["sim", "run"],
        usage: "sim run --dir DEV --broker HOST:PORT [--json] [--verbose]",
        summary: "run a simulated device (boot, app, updates) until SIGINT/SIGTERM",
        run: runCommand,
    },
])
