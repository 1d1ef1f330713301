/**
 * Argument parsing and exit codes of the `bulwark` CLI. Exit 0 on success, 1 when a
 * security check refuses, 2 for bad usage or unreadable input; these are contracts that
 * other tools drive, so every command goes through here.
 */

export const EXIT_OK = 0
export const EXIT_REFUSED = 1
export const EXIT_USAGE = 2

/** Bad usage or unreadable input: exit 2. */
export class UsageError extends Error {
    constructor(message: string) {
        super(message)
        this.name = "UsageError"
    }
}

/** A security check refused: exit 1. `details` go into the JSON result. */
export class RefusedError extends Error {
    readonly details: Record<string, unknown>
    constructor(message: string, details: Record<string, unknown> = {}) {
        super(message)
        this.name = "RefusedError"
        this.details = details
    }
}

export interface ParsedArgs {
    positional: string[]
    flags: Map<string, string[]>
}

/**
 * Parses `--name value`, `--name=value` and bare boolean flags listed in `booleans`.
 * Unknown flags are a UsageError so a typo never silently changes what a command does.
 */
export function parseArgs(argv: string[], valued: string[], booleans: string[]): ParsedArgs {
    const positional: string[] = []
    const flags = new Map<string, string[]>()
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]
        if (!arg.startsWith("--")) {
            positional.push(arg)
            continue
        }
        let name = arg.slice(2)
        let value: string | undefined
        const eq = name.indexOf("=")
        if (eq >= 0) {
            value = name.slice(eq + 1)
            name = name.slice(0, eq)
        }
        if (booleans.includes(name)) {
            if (value !== undefined) throw new UsageError(`--${name} takes no value`)
            flags.set(name, ["true"])
            continue
        }
        if (!valued.includes(name)) throw new UsageError(`unknown option --${name}`)
        if (value === undefined) {
            value = argv[++i]
            if (value === undefined || value.startsWith("--"))
                throw new UsageError(`--${name} needs a value`)
        }
        const list = flags.get(name) ?? []
        list.push(value)
        flags.set(name, list)
    }
    return { positional, flags }
}

export function flag(args: ParsedArgs, name: string): string | undefined {
    const list = args.flags.get(name)
    return list ? list[list.length - 1] : undefined
}

export function requireFlag(args: ParsedArgs, name: string): string {
    const value = flag(args, name)
    if (value === undefined) throw new UsageError(`missing --${name}`)
    return value
}

export function flagList(args: ParsedArgs, name: string): string[] {
    return args.flags.get(name) ?? []
}

export function hasFlag(args: ParsedArgs, name: string): boolean {
    return args.flags.has(name)
}

/** A non-negative integer flag; UsageError naming the flag otherwise. */
export function intFlag(args: ParsedArgs, name: string, fallback?: number): number {
    const raw = flag(args, name)
    if (raw === undefined) {
        if (fallback === undefined) throw new UsageError(`missing --${name}`)
        return fallback
    }
    if (!/^[0-9]{1,9}$/.test(raw)) throw new UsageError(`--${name} must be a non-negative integer`)
    return Number(raw)
}
