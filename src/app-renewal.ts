/**
 * Certificate renewal in the running app (docs/provisioning.md, "Renewal over the network";
 * GP-TM-21, GP-TM-35, GP-TM-53, GP-TM-55): the route for operator-signed messages on
 * bulwark/<id>/cert/renew (src/renewal.ts), answers on cert/status, and the trial of a new
 * certificate: the session reconnects so the broker sees it; the first connection that
 * succeeds confirms it, the first that fails puts the previous certificate back.
 */

import { Board } from "../hal/board"
import { SecurityServices } from "./admin/service"
import { admitCommand } from "./app-audit"
import { AppPublish, InboundMessage, OWN_ECHO } from "./app-routes"
import { AuditEntry } from "./audit/record"
import { PARTITION_IDENTITY } from "./identity"
import { MessageError } from "./messages"
import { RateLimiter } from "./ratelimit"
import {
    INSTALLED_STATUS,
    KIND_KEY_REQUEST,
    REFUSED_STATUS,
    RENEWAL_EVENT,
    RenewalContext,
    confirmRenewal,
    revertRenewal,
    serveRenewal,
} from "./renewal"
import { DeviceSession, SessionEvent } from "./session"

const STATUS_TOPIC = "cert/status"

/**
 * A certificate on trial: `onTrial` from the install (or from start-up, when the record
 * says so) until the verdict is acted on; `verdict` is the latest connection outcome
 * since then: "" none yet, "connected" or "failed".
 */
export interface RenewalTrial {
    onTrial: boolean
    verdict: string
}

export function newRenewalTrial(): RenewalTrial {
    return { onTrial: false, verdict: "" }
}

/**
 * What the cert route needs, or null on a board without flash, secure element or audit
 * services (the operator keys come with them from the profile's security.operatorKeys).
 */
export function renewalContext(
    board: Board,
    deviceId: string,
    services: SecurityServices | null
): RenewalContext | null {
    const se = board.secureElement
    const flash = board.flash
    if (se === undefined || flash === undefined) return null
    if (services === null || services.exportContext === null) return null
    return {
        secureElement: se,
        crypto: board.crypto,
        clock: board.clock,
        partition: flash.partition(PARTITION_IDENTITY),
        deviceId: deviceId,
        operatorKeys: services.exportContext.operatorKeys,
        recentNonces: [],
    }
}

/** Inbound bulwark/<id>/cert/...: only renew (a command); the device's status echoes. */
export function certDecoder(limiter: RateLimiter): (p: Buffer, path: string[]) => InboundMessage {
    return function (payload: Buffer, path: string[]): InboundMessage {
        if (path.length !== 1) throw new MessageError("topic", "cert subtopic")
        if (path[0] === "status") return { kind: OWN_ECHO, payload: payload }
        if (path[0] !== "renew") throw new MessageError("topic", "cert subtopic")
        admitCommand(limiter, "cert")
        return { kind: "renew", payload: payload }
    }
}

/**
 * Serves a message from cert/renew: a refusal is audited with its check and answered
 * "refused" alone (GP-TM-53); a key request is answered with the public key; an installed
 * certificate is audited, put on trial, and the session reconnects with it.
 */
export function certHandler(
    ctx: RenewalContext,
    publish: AppPublish,
    record: (entry: AuditEntry) => void,
    trial: RenewalTrial,
    session: DeviceSession
): (m: InboundMessage, path: string[]) => Promise<void> {
    return async function (m: InboundMessage, path: string[]): Promise<void> {
        if (m.kind !== "renew") return
        const out = await serveRenewal(ctx, m.payload)
        if (out.check !== "ok") {
            record({ event: RENEWAL_EVENT, actor: "mqtt", outcome: "refused",
                detail: "check=" + out.check })
        } else if (out.kind === KIND_KEY_REQUEST) {
            record({ event: RENEWAL_EVENT, actor: "operator:" + out.operator, outcome: "info",
                detail: "step=key-request" })
        } else {
            record({ event: RENEWAL_EVENT, actor: "operator:" + out.operator,
                outcome: "success", detail: "step=installed serial=" + out.serial })
        }
        if (out.reply !== null) await publish(STATUS_TOPIC, out.reply, true)
        if (!out.installed) return
        trial.onTrial = true
        trial.verdict = ""
        await session.reconnect()
    }
}

/** The session's events, as they come (synchronously): the trial's verdict. */
export function noteRenewalEvent(trial: RenewalTrial, e: SessionEvent): void {
    if (!trial.onTrial) return
    if (e.event === "connected") trial.verdict = "connected"
    else if (e.event === "connect-failed") trial.verdict = "failed"
}

/**
 * From the main loop: acts on the trial's verdict. Connected: the previous certificate is
 * dropped and cert/status says installed. Failed: the previous certificate is restored,
 * the session dials again at once, and cert/status says refused once it is back.
 */
export async function settleRenewal(
    ctx: RenewalContext,
    trial: RenewalTrial,
    publish: AppPublish,
    record: (entry: AuditEntry) => void,
    session: DeviceSession
): Promise<void> {
    if (!trial.onTrial || trial.verdict === "") return
    const verdict = trial.verdict
    trial.onTrial = false
    trial.verdict = ""
    if (verdict === "connected") {
        if (await confirmRenewal(ctx))
            record({ event: RENEWAL_EVENT, actor: "device", outcome: "success",
                detail: "step=confirmed" })
        await publish(STATUS_TOPIC, Buffer.from(INSTALLED_STATUS), true)
        return
    }
    if (await revertRenewal(ctx))
        record({ event: RENEWAL_EVENT, actor: "device", outcome: "failure",
            detail: "step=reverted" })
    await session.reconnect()
    await publish(STATUS_TOPIC, Buffer.from(REFUSED_STATUS), true)
}
