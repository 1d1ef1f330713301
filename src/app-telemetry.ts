/**
 * The running app's health telemetry on bulwark/<id>/telemetry (docs/telemetry.md; GP-TM-41):
 * the body it reports, and the envelope signed by the identity key in the secure element
 * that carries it. A message the element cannot sign, or too large for the broker, is not
 * sent at all rather than sent unsigned.
 */

import { TelemetryError, TelemetrySigner } from "./telemetry"

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
    if (signer === null) return body
    try {
        const envelope = await signer.sign(body)
        if (envelope.length <= maxPayload) return envelope
        if (log !== undefined) log("telemetry larger than transport.maxPayload: not sent")
    } catch (e) {
        if (!(e instanceof TelemetryError)) throw e
        if (log !== undefined) log("telemetry not signed (" + e.check + "): not sent")
    }
    return null
}
