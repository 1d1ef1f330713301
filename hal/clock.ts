/**
 * Clock, watchdog, reset and random-number contracts (DESIGN.md section 3).
 * The sim clock is virtual and advanced by tests; a watchdog that is not fed in time
 * resets the board; a reset keeps its reason across the reboot.
 */

export interface Clock {
    /** Milliseconds since this boot; never goes back. */
    monotonicMs(): number
    /** Seconds since the Unix epoch when the board knows the time, otherwise null. */
    wallTime(): number | null
    /** Resolves after `ms` milliseconds of this clock. */
    sleep(ms: number): Promise<void>
}

export interface Watchdog {
    /** Arms the watchdog; the board resets when it is not fed within `timeoutMs`. */
    start(timeoutMs: number): Promise<void>
    feed(): void
}

export type ResetReason =
    | "power-on"
    | "software"
    | "watchdog"
    | "power-loss"
    | "update"
    | "revert"
    | "tamper"
    | "factory-reset"

export interface Reset {
    /** Why the board started this time. */
    lastReason(): ResetReason
    /** Reboots the board, keeping `reason` for the next boot. Does not return. */
    reboot(reason: ResetReason): Promise<void>
}

export interface Rng {
    /** False on boards whose generator is not cryptographic (RP2040); callers refuse keys. */
    readonly cryptographic: boolean
    bytes(length: number): Buffer
}
