/**
 * Small persistence helpers of the simulated board: JSON state files written atomically
 * (temp file, then rename), so a process killed mid-write leaves the old or the new state,
 * never a torn one. OTP fuses and the secure element keep their state this way. No fsync:
 * the model is a device losing power, not the host machine crashing.
 */

import { readFileSync, renameSync, writeFileSync } from "node:fs"
import { CheckError } from "../hal/errors"

/** Thrown when a state file of a device directory is missing or does not parse. */
export class SimStateError extends CheckError {
    readonly path: string
    constructor(check: "missing" | "corrupt", path: string, message: string) {
        super(check, message + ": " + path)
        this.name = "SimStateError"
        this.path = path
    }
}

export function writeJsonAtomic(path: string, value: unknown): void {
    const tmp = path + ".tmp"
    writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 })
    renameSync(tmp, path)
}

/** Reads a JSON object; SimStateError "missing" or "corrupt". */
export function readJsonObject(path: string): Record<string, unknown> {
    let text: string
    try {
        text = readFileSync(path, "utf8")
    } catch {
        throw new SimStateError("missing", path, "state file missing")
    }
    let value: unknown
    try {
        value = JSON.parse(text)
    } catch {
        throw new SimStateError("corrupt", path, "state file is not JSON")
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new SimStateError("corrupt", path, "state file is not a JSON object")
    return value as Record<string, unknown>
}

/** A lowercase hex string of exactly `bytes` bytes, or null when `value` is not one. */
export function hexOf(value: unknown, bytes: number): Buffer | null {
    if (typeof value !== "string" || value.length !== bytes * 2) return null
    if (!/^[0-9a-f]*$/.test(value)) return null
    return Buffer.from(value, "hex")
}
