/**
 * Attestation and the tamper response in the running app (docs/attestation.md; GP-TM-56,
 * GP-TM-41, GP-TM-31): the route for operator-signed requests on bulwark/<id>/attest/request
 * with the signed report on attest/report, and the response to an opened enclosure: a
 * "tamper" record sealed by a signed checkpoint first, then the secure element zeroized.
 */

import { MeasuredBoot } from "../boot/stub"
import { Board } from "../hal/board"
import { SecureElementError, isPowerLoss } from "../hal/errors"
import { SE_SLOT_IDENTITY } from "../hal/secure-element"
import { AttestContext, serveRequest } from "./attest"
import { admitCommand } from "./app-audit"
import { InboundMessage, OWN_ECHO } from "./app-routes"
import { AuditLog } from "./audit/log"
import { AuditEntry } from "./audit/record"
import { MessageError } from "./messages"
import { RateLimiter } from "./ratelimit"
import { SecurityServices } from "./admin/service"
import { SelfTestResult } from "./selftest"

/** The audit event of attestation requests (served or refused). */
export const ATTEST_EVENT = "attest"
/** The audit event of the tamper response (src/audit/chain.ts EVENTS.tamper). */
export const TAMPER_EVENT = "tamper"
/** What a refused request gets back on attest/report: no reason (GP-TM-53). */
export const REFUSED_REPLY = '{"ok":false,"error":"refused"}'

/** Inbound bulwark/<id>/attest/...: only request (a command); the device's reports echo. */
export function attestDecoder(limiter: RateLimiter): (p: Buffer, path: string[]) => InboundMessage {
    return function (payload: Buffer, path: string[]): InboundMessage {
        if (path.length !== 1) throw new MessageError("topic", "attest subtopic")
        if (path[0] === "report") return { kind: OWN_ECHO, payload: payload }
        if (path[0] !== "request") throw new MessageError("topic", "attest subtopic")
        admitCommand(limiter, "attest")
        return { kind: "request", payload: payload }
    }
}

/**
 * Answers a request with the signed report, or "refused" alone; the decision goes to the
 * audit log through `record` (queued by the app, so it never lands inside an export).
 */
export function attestHandler(
    ctx: AttestContext,
    publish: (suffix: string, payload: Buffer, reliable: boolean) => Promise<void>,
    record: (entry: AuditEntry) => void
): (m: InboundMessage, path: string[]) => Promise<void> {
    return async function (m: InboundMessage, path: string[]): Promise<void> {
        if (m.kind !== "request") return
        const served = await serveRequest(ctx, m.payload)
        if (served.report === null) {
            record({ event: ATTEST_EVENT, actor: "mqtt", outcome: "refused",
                detail: "check=" + served.check })
            await publish("attest/report", Buffer.from(REFUSED_REPLY), true)
            return
        }
        record({ event: ATTEST_EVENT, actor: "operator:" + served.operator, outcome: "success",
            detail: "" })
        await publish("attest/report", served.report, true)
    }
}

/**
 * What the attest route needs, or null on a board without secure element or audit
 * services (the operator keys come with them from the profile's security.operatorKeys).
 */
export function attestContext(
    board: Board,
    deviceId: string,
    services: SecurityServices | null,
    measured: MeasuredBoot,
    selfTest: SelfTestResult
): AttestContext | null {
    const se = board.secureElement
    if (se === undefined || services === null || services.exportContext === null) return null
    return {
        secureElement: se,
        crypto: board.crypto,
        clock: board.clock,
        otp: board.otp === undefined ? null : board.otp,
        deviceId: deviceId,
        operatorKeys: services.exportContext.operatorKeys,
        recentNonces: [],
        measured: measured,
        selfTest: selfTest,
    }
}

/**
 * At start-up without an identity: true when a tamper response zeroized the identity key
 * (the device then refuses to connect and records that once per start), false when the
 * device was never provisioned.
 */
export async function refuseZeroized(board: Board, audit: AuditLog | null): Promise<boolean> {
    if ((await identityKeyState(board)) !== "zeroized") return false
    if (audit !== null)
        await audit.append({ event: TAMPER_EVENT, actor: "device", outcome: "refused",
            detail: "identity=zeroized network=off" })
    return true
}

/** "present", "zeroized" (a tamper response already wiped it) or "none" (not provisioned). */
export async function identityKeyState(board: Board): Promise<string> {
    const se = board.secureElement
    if (se === undefined) return "none"
    try {
        await se.publicKey(SE_SLOT_IDENTITY)
        return "present"
    } catch (e) {
        if (e instanceof SecureElementError) return e.code === "zeroized" ? "zeroized" : "none"
        throw e
    }
}

/**
 * The tamper response (GP-TM-31): records "tamper" and closes the key epoch with a signed
 * checkpoint, so the record stays provable after the keys are gone, then zeroizes the
 * secure element (identity key, audit MAC key, secrets). When the identity key was
 * already wiped (the switch is still open after a power cycle) it records the fact and
 * wipes again. A log that cannot be written does not stop the wipe. Returns the detail.
 */
export async function respondToTamper(board: Board, audit: AuditLog | null): Promise<string> {
    const se = board.secureElement
    const before = await identityKeyState(board)
    const detail = "switch=open identity=" + before + " zeroize=" +
        (se === undefined ? "no-secure-element" : "done")
    if (audit !== null) {
        try {
            await audit.append({ event: TAMPER_EVENT, actor: "tamper-switch", outcome: "failure",
                detail: detail })
            await audit.checkpoint()
        } catch (e) {
            if (isPowerLoss(e)) throw e
        }
    }
    if (se !== undefined) await se.zeroize()
    return detail
}
