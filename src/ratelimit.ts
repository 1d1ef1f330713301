/**
 * Rate limiting (GP-TM-46): token buckets driven by the HAL clock for inbound commands per
 * source, outbound publishes, login attempts and update requests, sized by the device
 * profile's `rateLimits`. Excess is dropped at once (constant work, no queueing, so a flood
 * cannot starve the main loop) and counted; the audit log gets one summary per period.
 */

import { RateLimit } from "../boot/profile"
import { Clock } from "../hal/clock"

export type RateCategory = "commands" | "publishes" | "logins" | "updates"
export const RATE_CATEGORIES: RateCategory[] = ["commands", "publishes", "logins", "updates"]

/** A bucket of `burst` tokens refilled at `ratePerSec`; one token admits one event. */
export class TokenBucket {
    private tokens: number
    private lastMs: number

    constructor(
        private readonly limit: RateLimit,
        nowMs: number
    ) {
        this.tokens = limit.burst
        this.lastMs = nowMs
    }

    /** Takes one token if there is one at `nowMs`; never blocks. */
    take(nowMs: number): boolean {
        this.refill(nowMs)
        if (this.tokens < 1) return false
        this.tokens = this.tokens - 1
        return true
    }

    /** Milliseconds until a token is available at `nowMs` (0 when one is). */
    waitMs(nowMs: number): number {
        this.refill(nowMs)
        if (this.tokens >= 1) return 0
        return Math.ceil(((1 - this.tokens) * 1000) / this.limit.ratePerSec)
    }

    private refill(nowMs: number): void {
        // The clock is monotonic; a smaller value (a new boot) just restarts the interval.
        const elapsed = nowMs > this.lastMs ? nowMs - this.lastMs : 0
        this.lastMs = nowMs
        const added = (elapsed * this.limit.ratePerSec) / 1000
        this.tokens = Math.min(this.limit.burst, this.tokens + added)
    }
}

/** Counts dropped since the last summary; `periodMs` is the span it covers. */
export interface RateSummary {
    commands: number
    publishes: number
    logins: number
    updates: number
    /** Distinct command sources that had drops (at most `maxSources`, then "other"). */
    sources: string[]
    periodMs: number
}

export interface RateLimiterOptions {
    /** Command sources with a bucket of their own; later ones share one bucket. */
    maxSources?: number
    /** Shortest span between two summaries (default 60 s). */
    summaryPeriodMs?: number
}

interface SourceBucket {
    source: string
    bucket: TokenBucket
}

const OTHER_SOURCES = "(other)"

/**
 * The device's limiter. Commands get a bucket per source (a small fixed table, so rotating
 * source names cannot mint fresh buckets: sources past the table share one); publishes,
 * logins and updates get one bucket each.
 */
export class RateLimiter {
    private readonly sources: SourceBucket[] = []
    private readonly maxSources: number
    private readonly summaryPeriodMs: number
    private readonly shared: { [category: string]: TokenBucket } = {}
    private readonly otherCommands: TokenBucket
    private pending: { [category: string]: number } = {}
    private totals: { [category: string]: number } = {}
    private droppedSources: string[] = []
    private lastSummaryMs: number

    constructor(
        private readonly limits: { [category: string]: RateLimit },
        private readonly clock: Clock,
        options?: RateLimiterOptions
    ) {
        const now = clock.monotonicMs()
        this.maxSources = options && options.maxSources ? options.maxSources : 16
        this.summaryPeriodMs =
            options && options.summaryPeriodMs !== undefined ? options.summaryPeriodMs : 60000
        for (let i = 0; i < RATE_CATEGORIES.length; i++) {
            const c = RATE_CATEGORIES[i]
            if (!limits[c]) throw new RangeError("rate limit missing: " + c)
            this.shared[c] = new TokenBucket(limits[c], now)
            this.pending[c] = 0
            this.totals[c] = 0
        }
        this.otherCommands = new TokenBucket(limits["commands"], now)
        this.lastSummaryMs = now
    }

    /**
     * Admits or drops one event. `source` matters for "commands" only (e.g. the operator
     * or topic that sent it). A dropped event is counted, nothing more.
     */
    allow(category: RateCategory, source?: string): boolean {
        const now = this.clock.monotonicMs()
        const bucket =
            category === "commands" ? this.commandBucket(source ? source : "", now) : null
        const ok = bucket ? bucket.take(now) : this.shared[category].take(now)
        if (ok) return true
        this.pending[category] = this.pending[category] + 1
        this.totals[category] = this.totals[category] + 1
        if (category === "commands") this.noteSource(source ? source : "")
        return false
    }

    /** Milliseconds until `category` admits again (for "try again later" answers). */
    waitMs(category: RateCategory): number {
        return this.shared[category].waitMs(this.clock.monotonicMs())
    }

    /** Events of `category` dropped since boot. */
    dropped(category: RateCategory): number {
        return this.totals[category]
    }

    /**
     * The drops since the last summary, once at least `summaryPeriodMs` has passed since
     * it and something was dropped; otherwise null. Taking it starts a new period. The
     * caller appends it to the audit log as one "rate-limit" record.
     */
    takeSummary(force?: boolean): RateSummary | null {
        const now = this.clock.monotonicMs()
        const any =
            this.pending["commands"] +
                this.pending["publishes"] +
                this.pending["logins"] +
                this.pending["updates"] >
            0
        if (!any) return null
        if (!force && now - this.lastSummaryMs < this.summaryPeriodMs) return null
        const summary: RateSummary = {
            commands: this.pending["commands"],
            publishes: this.pending["publishes"],
            logins: this.pending["logins"],
            updates: this.pending["updates"],
            sources: this.droppedSources,
            periodMs: now - this.lastSummaryMs,
        }
        for (let i = 0; i < RATE_CATEGORIES.length; i++) this.pending[RATE_CATEGORIES[i]] = 0
        this.droppedSources = []
        this.lastSummaryMs = now
        return summary
    }

    private commandBucket(source: string, now: number): TokenBucket {
        for (let i = 0; i < this.sources.length; i++)
            if (this.sources[i].source === source) return this.sources[i].bucket
        if (this.sources.length >= this.maxSources) return this.otherCommands
        const bucket = new TokenBucket(this.limits["commands"], now)
        this.sources.push({ source: source, bucket: bucket })
        return bucket
    }

    private noteSource(source: string): void {
        let known = false
        for (let i = 0; i < this.sources.length; i++)
            if (this.sources[i].source === source) known = true
        const name = known ? source : OTHER_SOURCES
        if (this.droppedSources.indexOf(name) < 0 && this.droppedSources.length < 8)
            this.droppedSources.push(name)
    }
}

/** One line of `key=value` pairs for the audit record of a summary (no secrets in it). */
export function describeSummary(summary: RateSummary): string {
    return (
        "commands=" +
        summary.commands +
        " publishes=" +
        summary.publishes +
        " logins=" +
        summary.logins +
        " updates=" +
        summary.updates +
        " periodMs=" +
        summary.periodMs +
        (summary.sources.length > 0 ? " sources=" + summary.sources.join(",") : "")
    )
}
