/**
 * What the running app writes to the audit log (docs/audit-log.md; GP-TM-08, GP-TM-17,
 * GP-TM-46, GP-TM-55): the boot decision, the session's events under stable names, and the
 * rate limiter's gates on inbound commands and outbound publishes. Pure helpers; the app
 * (src/app.ts) owns the log and calls them. No detail carries a credential.
 */

import { MeasuredBoot } from "../boot/stub"
import { Clock } from "../hal/clock"
import { AuditEntry } from "./audit/record"
import { MessageError } from "./messages"
import { RateLimiter } from "./ratelimit"
import { SessionEvent } from "./session"

/** Stable event names of the session's records (docs/audit-log.md, "What is recorded"). */
export const SESSION_EVENTS = {
    connected: "session-connected",
    connectFailed: "session-connect-failed",
    outageStart: "session-outage-start",
    outageEnd: "session-outage-end",
    queueOverflow: "session-queue-overflow",
    inboundRejected: "session-inbound-rejected",
}

/** The MessageError check of an inbound message the rate limiter dropped. */
export const RATE_CHECK = "rate"

/** The limiter source of rejected inbound messages, for their audit records. */
export const REJECTED_SOURCE = "(rejected)"

/** Longest a publish waits for a token before it is dropped (and counted). */
export const PUBLISH_WAIT_MS = 2000

/** The "boot" record of this start: which image runs, and the stub's last course change. */
export function bootEntry(measured: MeasuredBoot): AuditEntry {
    let detail =
        "slot=" + measured.slot + " version=" + measured.version + " counter=" +
        measured.securityCounter + " trial=" + (measured.trial ? "true" : "false")
    if (measured.trial) detail = detail + " attempt=" + measured.attempt
    if (measured.event !== "none") {
        detail = detail + " event=" + measured.event
        if (measured.eventSlot !== null) detail = detail + " event-slot=" + measured.eventSlot
    }
    // The boot did not run the image it was meant to: a refused pending update, a trial
    // that never confirmed, or an active slot that no longer verifies. A rescued boot
    // (event=rescued event-slot=a: a signed rescue image brought a board in recovery back)
    // is info like a confirmed one: the device boots again, nothing failed in this boot,
    // and the record repeats on every boot until the next boot-state write.
    const failed = measured.event === "reverted" || measured.event === "fallback" ||
        measured.event === "pending-refused"
    const outcome = failed ? "failure" : "info"
    return { event: "boot", actor: "boot-stub", outcome: outcome, detail: detail }
}

/**
 * The audit record of a session event, or null for one that is not recorded: repeated
 * connect failures within one outage (the first one is), and inbound messages the rate
 * limiter dropped (its summary counts them). `firstFailure` says whether this
 * connect-failed is the first of its outage.
 */
export function sessionEntry(e: SessionEvent, firstFailure: boolean): AuditEntry | null {
    const code = e.code === undefined ? "" : " code=" + e.code
    if (e.event === "connected")
        return { event: SESSION_EVENTS.connected, actor: "session", outcome: "success", detail: "" }
    if (e.event === "connect-failed") {
        if (!firstFailure) return null
        const detail = code.length > 0 ? code.slice(1) : ""
        return { event: SESSION_EVENTS.connectFailed, actor: "session", outcome: "failure",
            detail: detail }
    }
    if (e.event === "outage-start")
        return { event: SESSION_EVENTS.outageStart, actor: "session", outcome: "info", detail: "" }
    if (e.event === "outage-end") {
        const detail = "duration-ms=" + (e.durationMs === undefined ? 0 : e.durationMs) +
            " dropped=" + (e.dropped === undefined ? 0 : e.dropped)
        return { event: SESSION_EVENTS.outageEnd, actor: "session", outcome: "info",
            detail: detail }
    }
    if (e.event === "queue-overflow")
        return { event: SESSION_EVENTS.queueOverflow, actor: "session", outcome: "failure",
            detail: "dropped=" + (e.dropped === undefined ? 1 : e.dropped) }
    if (e.code === RATE_CHECK) return null
    const channel = e.channel === undefined || e.channel === "" ? "" : " channel=" + e.channel
    const check = e.code === undefined ? "unknown" : e.code
    return { event: SESSION_EVENTS.inboundRejected, actor: "session", outcome: "refused",
        detail: "check=" + check + channel }
}

/**
 * Admits one inbound command from `source` (its channel) or fails with MessageError "rate"
 * (GP-TM-46). Decoders call it after the topic check, so the device's own messages that
 * come back through its subscription cost no token.
 */
export function admitCommand(limiter: RateLimiter, source: string): void {
    if (!limiter.allow("commands", source)) throw new MessageError(RATE_CHECK, "dropped")
}

/**
 * Takes a "publishes" token, waiting up to PUBLISH_WAIT_MS in all for one when `wait`
 * (protocol messages: update requests, export pieces); telemetry does not wait. False:
 * dropped and counted.
 */
export async function publishToken(
    limiter: RateLimiter,
    clock: Clock,
    wait: boolean
): Promise<boolean> {
    // Waits again while the bucket is still short: a sleep may end a little early on a real
    // clock, and another waiting publish may have taken the token this one waited for.
    let waited = 0
    while (wait) {
        const waitMs = limiter.waitMs("publishes")
        if (waitMs <= 0 || waited + waitMs > PUBLISH_WAIT_MS) break
        await clock.sleep(waitMs)
        waited = waited + waitMs
    }
    return limiter.allow("publishes")
}
