/**
 * Helpers every `bulwark` command shares (tools/cli.ts frame): printing a result as text or
 * one JSON line, refusing stray arguments and unreadable files as usage errors (exit 2),
 * and opening a simulated device directory.
 */

import { readFileSync } from "node:fs"
import { resolve } from "node:path"

import { SimBoard, SimBoardError } from "../sim/board"
import { hasFlag, ParsedArgs, UsageError } from "./args"

/** Prints `text`, or with `json` the object `value` as one JSON line. */
export function printResult(json: boolean, value: Record<string, unknown>, text: string): void {
    if (json) process.stdout.write(JSON.stringify(value) + "\n")
    else process.stdout.write(text + "\n")
}

/** As printResult for the commands whose --json result starts with "ok": true. */
export function printOk(args: ParsedArgs, value: Record<string, unknown>, text: string): void {
    printResult(hasFlag(args, "json"), { ok: true, ...value }, text)
}

/** Refuses any positional argument (exit 2). */
export function noPositional(positional: string[]): void {
    if (positional.length > 0) throw new UsageError(`unexpected argument ${positional[0]}`)
}

/** The bytes of file `path`; an unreadable file is a usage error naming `what` (exit 2). */
export function readInput(path: string, what: string): Buffer {
    try {
        return readFileSync(path)
    } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error"
        throw new UsageError(`cannot read ${what} ${path}: ${code}`)
    }
}

/** Opens device directory `dir`; a missing or corrupt one is unreadable input (exit 2). */
export async function openBoard(dir: string): Promise<SimBoard> {
    try {
        return await SimBoard.open(resolve(dir))
    } catch (err) {
        if (err instanceof SimBoardError) throw new UsageError(err.message)
        throw err
    }
}
