/**
 * `bulwark sim console --dir DEV` (docs/admin.md; GP-TM-08, GP-TM-25): attaches to the local
 * admin console of a simulated device. A running device serves DEV/console.sock; a device
 * that is not running is powered on in this process (its flash, fuses and secure element
 * are the same files). --hold-button powers it on with the button held (recovery).
 */

import { existsSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Readable, Writable } from "node:stream"
import { ServiceError, runConsole } from "../../src/admin/service"
import { StreamConsole, connectConsoleSocket, openLocalSession } from "../../sim/console"
import { Console } from "../../hal/local"
import { RefusedError, UsageError, flag, hasFlag, parseArgs } from "../args"
import { registerCommands } from "../cli"

/**
 * Wraps the operator's side: lines between "export-begin" and "export-end" are decoded
 * into `exportTo` instead of being shown, when a file is given.
 */
function operatorOutput(output: Writable, exportTo: string | undefined): Writable {
    let collecting: string[] | null = null
    let pending = ""
    return new Writable({
        write(chunk, _enc, done) {
            pending += chunk.toString()
            let nl = pending.indexOf("\n")
            while (nl >= 0) {
                const line = pending.slice(0, nl)
                pending = pending.slice(nl + 1)
                nl = pending.indexOf("\n")
                if (exportTo !== undefined && line === "export-begin") collecting = []
                else if (collecting !== null && line.startsWith("export "))
                    collecting.push(line.slice(7))
                else if (collecting !== null && line === "export-end") {
                    const bytes = Buffer.from(collecting.join(""), "hex")
                    writeFileSync(exportTo!, bytes, { flag: "wx" })
                    output.write(`export written to ${exportTo} (${bytes.length} bytes)\n`)
                    collecting = null
                } else output.write(line + "\n")
            }
            done()
        },
    })
}

/** The command with its streams injected, so tests can drive a session. */
export async function runSimConsole(
    argv: string[],
    input: Readable,
    output: Writable
): Promise<number> {
    const args = parseArgs(argv, ["dir", "export-to"], ["hold-button"])
    if (args.positional.length > 0)
        throw new UsageError(`unexpected argument ${args.positional[0]}`)
    const dirFlag = flag(args, "dir")
    if (dirFlag === undefined) throw new UsageError("missing --dir")
    const dir = resolve(dirFlag)
    if (!existsSync(join(dir, "board.json"))) throw new UsageError(`not a device directory: ${dir}`)
    const exportTo = flag(args, "export-to")
    if (exportTo !== undefined && existsSync(exportTo))
        throw new UsageError(`${exportTo} exists; exports are never overwritten`)
    const shown = operatorOutput(output, exportTo)

    const socket = await connectConsoleSocket(dir)
    if (socket !== null) {
        if (hasFlag(args, "hold-button"))
            throw new UsageError("--hold-button needs a device that is not running")
        await new Promise<void>((done) => {
            socket.pipe(shown)
            input.pipe(socket)
            socket.once("close", () => done())
        })
        return 0
    }

    let session
    try {
        session = await openLocalSession(dir, { holdButton: hasFlag(args, "hold-button") })
    } catch (err) {
        if (err instanceof ServiceError)
            throw new RefusedError("the console is off in this device's profile (services.console)")
        throw err
    }
    try {
        const channel: Console = new StreamConsole(input, shown)
        await runConsole(channel, session.admin)
    } finally {
        session.close()
    }
    return 0
}

registerCommands([
    {
        words: ["sim", "console"],
        usage: "sim console --dir DEV [--hold-button] [--export-to FILE]",
        summary: "attach to a simulated device's local admin console (stdin/stdout)",
        run: (argv) => runSimConsole(argv, process.stdin, process.stdout),
    },
])
