/**
 * `bulwark demo [--dir DIR] [--json]` (what `npm start` runs): the newcomer's story on
 * embedded defaults, in one terminal (tools/demo.ts). Exit 0 when every device did what its
 * scenario expects, 1 otherwise; Ctrl-C stops the devices and the broker and exits 130.
 */

import { resolve } from "node:path"

import { flag, hasFlag, parseArgs } from "../args"
import { PACKAGE_ROOT } from "../app-build"
import { registerCommands } from "../cli"
import { runDemo } from "../demo"
import { DEFAULT_PROFILE } from "./sim-board"

registerCommands([
    {
        words: ["demo"],
        usage: "demo [--dir DIR] [--profile FILE] [--json]",
        summary: "the whole story: verified boot, mutual TLS, an update campaign (npm start)",
        async run(argv) {
            const args = parseArgs(argv, ["dir", "profile"], ["json"])
            const json = hasFlag(args, "json")
            const dir = resolve(flag(args, "dir") ?? resolve(PACKAGE_ROOT, ".bulwark/demo"))
            let stop: () => void = () => undefined
            const stopSignal = new Promise<void>((r) => (stop = r))
            let interrupted = false
            const onSignal = () => {
                if (interrupted) process.exit(130)
                interrupted = true
                process.stderr.write("\nstopping: powering the devices off and closing the broker…\n")
                stop()
            }
            process.on("SIGINT", onSignal)
            process.on("SIGTERM", onSignal)
            const say = (line: string) => {
                if (!json) process.stdout.write(line + "\n")
            }
            try {
                say("Bulwark demo: a fleet of 3 simulated devices, verified boot, mutual TLS, signed updates")
                const rows = await runDemo(
                    {
                        dir,
                        profilePath: resolve(flag(args, "profile") ?? DEFAULT_PROFILE),
                        out: say,
                        live: !json && process.stdout.isTTY === true,
                    },
                    stopSignal
                )
                const ok = rows.every((r) => r.ok)
                if (json) process.stdout.write(JSON.stringify({ ok, dir, devices: rows }) + "\n")
                else {
                    say("")
                    say(ok ? "Every device did what its scenario expects." : "Some device did not do what its scenario expects.")
                    say(`State kept in ${dir} (wiped on the next run). Run the tests: npm test`)
                }
                return ok ? 0 : 1
            } catch (err) {
                if (interrupted) return 130
                throw err
            } finally {
                process.off("SIGINT", onSignal)
                process.off("SIGTERM", onSignal)
            }
        },
    },
])
