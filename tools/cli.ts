/**
 * The host CLI `bulwark`: keys, images, the simulated board and, as they land, provisioning,
 * the broker, updates and the audit log. Each command lives in tools/commands/ and is
 * listed in COMMANDS; results go to stdout (JSON with --json), diagnostics to stderr.
 */

import { EXIT_REFUSED, EXIT_USAGE, RefusedError, UsageError } from "./args"

export interface Command {
    /** Words that select the command, e.g. ["image", "sign"]. */
    words: string[]
    usage: string
    summary: string
    run(argv: string[]): Promise<number>
}

const COMMANDS: Command[] = []

/** Each commands module calls this at import time. */
export function registerCommands(list: Command[]): void {
    COMMANDS.push(...list)
}

async function loadCommands(): Promise<void> {
    await import("./commands/index")
}

function usageText(): string {
    const lines = ["usage: bulwark <command> [options]", ""]
    for (const c of COMMANDS) lines.push(`  ${c.usage}`, `      ${c.summary}`)
    return lines.join("\n")
}

function wantsJson(argv: string[]): boolean {
    return argv.includes("--json")
}

export async function main(argv: string[]): Promise<number> {
    await loadCommands()
    if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help") {
        process.stdout.write(usageText() + "\n")
        return argv.length === 0 ? EXIT_USAGE : 0
    }
    const command = COMMANDS.filter((c) => c.words.every((w, i) => argv[i] === w)).sort(
        (a, b) => b.words.length - a.words.length
    )[0]
    if (!command) {
        process.stderr.write(`bulwark: unknown command "${argv.slice(0, 2).join(" ")}"\n`)
        process.stderr.write(usageText() + "\n")
        return EXIT_USAGE
    }
    const rest = argv.slice(command.words.length)
    try {
        return await command.run(rest)
    } catch (err) {
        return reportError(err, wantsJson(rest), command.usage)
    }
}

function reportError(err: unknown, json: boolean, usage: string): number {
    if (err instanceof RefusedError) {
        if (json) process.stdout.write(JSON.stringify({ ok: false, refused: err.message, ...err.details }) + "\n")
        process.stderr.write(`bulwark: refused: ${err.message}\n`)
        return EXIT_REFUSED
    }
    const message = err instanceof Error ? err.message : String(err)
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: message }) + "\n")
    process.stderr.write(`bulwark: ${message}\n`)
    if (err instanceof UsageError) process.stderr.write(`usage: bulwark ${usage}\n`)
    return EXIT_USAGE
}
