/** `bulwark build-app`: builds the sim app bundle (the payload to sign) and prints its path. */

import { resolve } from "node:path"

import { flag, hasFlag, parseArgs } from "../args"
import { buildAppBundle, DEFAULT_APP_ENTRY, DEFAULT_APP_OUT } from "../app-build"
import { registerCommands } from "../cli"

registerCommands([
    {
        words: ["build-app"],
        usage: "build-app [--entry FILE] [--out FILE] [--json]",
        summary: "bundle the app for the sim; the output is the payload to sign",
        async run(argv) {
            const args = parseArgs(argv, ["entry", "out"], ["json"])
            const entry = resolve(flag(args, "entry") ?? DEFAULT_APP_ENTRY)
            const out = resolve(flag(args, "out") ?? DEFAULT_APP_OUT)
            const result = await buildAppBundle(entry, out)
            if (hasFlag(args, "json")) process.stdout.write(JSON.stringify({ ok: true, ...result }) + "\n")
            else process.stdout.write(`app bundle: ${result.path} (${result.bytes} bytes)\n`)
            return 0
        },
    },
])
