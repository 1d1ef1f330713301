/**
 * Time and restarts of the simulated board (hal/clock.ts): a virtual clock that tests
 * advance by hand, a real clock for the sim runner, a watchdog that resets a board that
 * is not fed in time, and a reset that keeps its reason across the reboot (GP-TM-16: the
 * device recovers from a hung application). RebootSignal (sim/power.ts) ends a run.
 */

import { Clock, Reset, ResetReason, Watchdog } from "../hal/clock"
import { PowerRail, RebootSignal } from "./power"

export const RESET_REASONS: ResetReason[] = [
    "power-on",
    "software",
    "watchdog",
    "power-loss",
    "update",
    "revert",
    "tamper",
    "factory-reset",
]

/** A Clock that can also run a callback later; the watchdog uses it. */
export interface SimClock extends Clock {
    /**
     * Calls `callback` once `delayMs` of this clock have passed; returns a cancel function.
     * `late` timers fire after ordinary ones due at the same instant.
     */
    schedule(delayMs: number, callback: () => void, late?: boolean): () => void
    /** Drops every pending timer; later sleeps never resolve (the run is over). */
    halt(): void
}

function checkDelay(ms: number): void {
    if (typeof ms !== "number" || !(ms >= 0) || ms === Infinity)
        throw new RangeError("ms: expected a finite non-negative number")
}

/** Lets every queued promise continuation run, so code woken by a timer reaches its next await. */
function settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve))
}

function never(): Promise<void> {
    return new Promise(() => undefined)
}

interface Timer {
    due: number
    late: boolean
    seq: number
    callback: () => void
}

/**
 * Virtual time: monotonic milliseconds start at 0 at each boot and move only when a test
 * calls `advance`. Timers fire in order of due time (then `late`, then creation), and the
 * clock lets promise continuations settle between two timers, so a loop that sleeps 100 ms
 * runs ten times in `advance(1000)`. Wall time is unknown (null) until set.
 */
export class VirtualClock implements SimClock {
    private now = 0
    private wallBase: number | null = null
    private wallSetAt = 0
    private timers: Timer[] = []
    private seq = 0
    private halted = false
    private advancing = false

    constructor(options: { wallTime?: number | null } = {}) {
        if (options.wallTime !== undefined) this.setWallTime(options.wallTime)
    }

    monotonicMs(): number {
        return this.now
    }

    wallTime(): number | null {
        if (this.wallBase === null) return null
        return Math.floor(this.wallBase + (this.now - this.wallSetAt) / 1000)
    }

    /** Sets the wall time (seconds since the epoch) as of now, or makes it unknown (null). */
    setWallTime(seconds: number | null): void {
        if (seconds !== null && !(typeof seconds === "number" && Number.isFinite(seconds)))
            throw new RangeError("seconds: expected a finite number or null")
        this.wallBase = seconds
        this.wallSetAt = this.now
    }

    /** A sleep of 0 ms resolves at once; a longer one when `advance` reaches its due time. */
    sleep(ms: number): Promise<void> {
        checkDelay(ms)
        if (this.halted) return never()
        if (ms === 0) return Promise.resolve()
        return new Promise((resolve) => {
            this.schedule(ms, resolve)
        })
    }

    schedule(delayMs: number, callback: () => void, late = false): () => void {
        checkDelay(delayMs)
        if (this.halted) return () => undefined
        const timer: Timer = { due: this.now + delayMs, late: late, seq: this.seq++, callback }
        this.timers.push(timer)
        return () => {
            const i = this.timers.indexOf(timer)
            if (i >= 0) this.timers.splice(i, 1)
        }
    }

    /** Timers waiting to fire. */
    pendingTimers(): number {
        return this.timers.length
    }

    /**
     * Moves time forward by `ms`, firing every timer that falls due on the way at its own
     * due time, and settling promise continuations after each.
     */
    async advance(ms: number): Promise<void> {
        checkDelay(ms)
        if (this.advancing) throw new Error("VirtualClock.advance: already advancing")
        this.advancing = true
        try {
            const target = this.now + ms
            await settle()
            for (;;) {
                const next = this.nextDue(target)
                if (next === null) break
                this.timers.splice(this.timers.indexOf(next), 1)
                if (next.due > this.now) this.now = next.due
                next.callback()
                await settle()
            }
            if (!this.halted) this.now = target
            await settle()
        } finally {
            this.advancing = false
        }
    }

    halt(): void {
        this.halted = true
        this.timers = []
    }

    private nextDue(limit: number): Timer | null {
        let best: Timer | null = null
        for (const t of this.timers) {
            if (t.due > limit) continue
            if (best === null || earlier(t, best)) best = t
        }
        return best
    }
}

function earlier(a: Timer, b: Timer): boolean {
    if (a.due !== b.due) return a.due < b.due
    if (a.late !== b.late) return !a.late
    return a.seq < b.seq
}

/** Host time, for the sim runner: monotonic from this boot, wall time from the host. */
export class RealClock implements SimClock {
    private readonly start = performance.now()
    private readonly handles = new Set<ReturnType<typeof setTimeout>>()
    private halted = false

    monotonicMs(): number {
        return Math.floor(performance.now() - this.start)
    }

    wallTime(): number | null {
        return Math.floor(Date.now() / 1000)
    }

    sleep(ms: number): Promise<void> {
        checkDelay(ms)
        if (this.halted) return never()
        return new Promise((resolve) => {
            this.schedule(ms, resolve)
        })
    }

    schedule(delayMs: number, callback: () => void): () => void {
        checkDelay(delayMs)
        if (this.halted) return () => undefined
        const handle = setTimeout(() => {
            this.handles.delete(handle)
            callback()
        }, delayMs)
        this.handles.add(handle)
        return () => {
            clearTimeout(handle)
            this.handles.delete(handle)
        }
    }

    halt(): void {
        this.halted = true
        for (const h of this.handles) clearTimeout(h)
        this.handles.clear()
    }
}

/**
 * Watchdog: once started it cannot be stopped; a board not fed within the timeout gets
 * `onExpire` (the board stores reason "watchdog" and ends the run).
 */
export class SimWatchdog implements Watchdog {
    private timeoutMs = 0
    private cancel: (() => void) | null = null

    constructor(
        private readonly clock: SimClock,
        private readonly rail: PowerRail,
        private readonly onExpire: () => void
    ) {}

    async start(timeoutMs: number): Promise<void> {
        this.rail.check()
        if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
            throw new RangeError("timeoutMs: expected a positive integer")
        this.timeoutMs = timeoutMs
        this.arm()
    }

    feed(): void {
        this.rail.check()
        if (this.cancel !== null) this.arm()
    }

    /** True once started. */
    running(): boolean {
        return this.cancel !== null
    }

    private arm(): void {
        if (this.cancel !== null) this.cancel()
        this.cancel = this.clock.schedule(this.timeoutMs, () => this.onExpire(), true)
    }
}

/**
 * Reset: `lastReason` is what the previous run stored (DEV/reset.json, read at power-on);
 * `reboot` stores the new reason through `onReboot` and then throws RebootSignal, which
 * the sim runner catches to power the board up again. It never resolves.
 */
export class SimReset implements Reset {
    constructor(
        private readonly reason: ResetReason,
        private readonly rail: PowerRail,
        private readonly onReboot: (reason: ResetReason) => void
    ) {}

    lastReason(): ResetReason {
        return this.reason
    }

    async reboot(reason: ResetReason): Promise<void> {
        this.rail.check()
        if (RESET_REASONS.indexOf(reason) < 0) throw new RangeError("reason: unknown reset reason")
        this.onReboot(reason)
        throw new RebootSignal(reason)
    }
}
