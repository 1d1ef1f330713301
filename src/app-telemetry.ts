/**
 * The running app's health telemetry on bulwark/<id>/telemetry (docs/telemetry.md; GP-TM-41):
 * the body it reports, and the envelope signed by the identity key in the secure element
 * that carries it; the update agent's status reports on bulwark/<id>/ota/status travel in
 * the same envelope under their own label (docs/update-format.md). A message the element
 * cannot sign, or too large for the broker, is not sent at all rather than sent unsigned.
 */

import { OTA_STATUS_LABEL, TELEMETRY_LABEL, TelemetryError, TelemetrySigner } from "./telemetry"

/** What the health body says; the app fills it from its state at each telemetry period. */
export interface HealthReport {
    version: string
    slot: string
    /** On a trial boot that has not confirmed itself yet. */
    trial: boolean
    uptimeMs: number
    selfTest: boolean
    update: string
}

/** The JSON health body, version 1. */
export function healthBody(report: HealthReport): Buffer {
    const body = {
        v: 1,
        version: report.version,
        slot: report.slot,
        trial: report.trial,
        uptimeMs: report.uptimeMs,
        selfTest: report.selfTest,
        update: report.update,
    }
    return Buffer.from(JSON.stringify(body))
}

/**
 * The health body in an envelope signed by the identity key, or the body alone when the
 * board has no secure element to sign with (`signer` null; docs/limits.md). Null when the
 * element cannot sign or the envelope exceeds `maxPayload`: such a message is not sent, and
 * `log` (diagnostics, quiet when absent) says why.
 */
export async function telemetryPayload(
    signer: TelemetrySigner | null,
    body: Buffer,
    maxPayload: number,
    log?: (line: string) => void
): Promise<Buffer | null> {
    return await signedPayload(signer, TELEMETRY_LABEL, "telemetry", body, maxPayload, log)
}

/**
 * An update status report (the agent's JSON) in an envelope signed under OTA_STATUS_LABEL,
 * with the same signer and so the same (boot, seq) order as telemetry. Null, and not sent,
 * when the element cannot sign or the envelope exceeds `maxPayload`; the JSON alone only
 * on a board without a secure element (`signer` null).
 */
export async function statusPayload(
    signer: TelemetrySigner | null,
    status: Buffer,
    maxPayload: number,
    log?: (line: string) => void
): Promise<Buffer | null> {
    return await signedPayload(signer, OTA_STATUS_LABEL, "status report", status, maxPayload, log)
}

async function signedPayload(
    signer: TelemetrySigner | null,
    label: string,
    what: string,
    body: Buffer,
    maxPayload: number,
    log?: (line: string) => void
): Promise<Buffer | null> {
    if (signer === null) return body
    try {
        const envelope = await signer.sign(body, label)
        if (envelope.length <= maxPayload) return envelope
        if (log !== undefined) log(what + " larger than transport.maxPayload: not sent")
    } catch (e) {
        if (!(e instanceof TelemetryError)) throw e
        if (log !== undefined) log(what + " not signed (" + e.check + "): not sent")
    }
    return null
}
