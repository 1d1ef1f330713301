/**
 * The running app's health telemetry on bulwark/<id>/telemetry (docs/telemetry.md; GP-TM-41):
 * the body it reports, and the envelope signed by the identity key in the secure element
 * that carries it. The other plain messages the device sends its fleet travel in the same
 * envelope, each under its own label (SIGNED_TOPICS): the update agent's status reports on
 * ota/status (docs/update-format.md), the owner's readings on data/telemetry and the
 * replies on privacy/reply (docs/privacy.md). The app's publish path signs them all
 * (topicPayload). A message the element cannot sign, or too large for the broker, is not
 * sent at all rather than sent unsigned.
 */

import { DATA_TELEMETRY_LABEL, OTA_STATUS_LABEL, PRIVACY_REPLY_LABEL } from "./telemetry"
import { TELEMETRY_LABEL, TelemetryError, TelemetrySigner } from "./telemetry"

/**
 * The topics (suffixes of bulwark/<id>/) whose messages the app signs, with the label of
 * each and the name its diagnostics use. Attestation reports (attest/report) and audit
 * export pieces (audit/...) carry their own signatures; cert/status is answered plain.
 */
export const SIGNED_TOPICS: { suffix: string; label: string; what: string }[] = [
    { suffix: "telemetry", label: TELEMETRY_LABEL, what: "telemetry" },
    { suffix: "ota/status", label: OTA_STATUS_LABEL, what: "status report" },
    { suffix: "data/telemetry", label: DATA_TELEMETRY_LABEL, what: "owner reading" },
    { suffix: "privacy/reply", label: PRIVACY_REPLY_LABEL, what: "privacy reply" },
]

function signedTopic(suffix: string): { suffix: string; label: string; what: string } | null {
    for (let i = 0; i < SIGNED_TOPICS.length; i++)
        if (SIGNED_TOPICS[i].suffix === suffix) return SIGNED_TOPICS[i]
    return null
}

/** The label messages on bulwark/<id>/<suffix> are signed under; null: sent as they are. */
export function topicLabel(suffix: string): string | null {
    const topic = signedTopic(suffix)
    return topic === null ? null : topic.label
}

/**
 * What the app sends on bulwark/<id>/<suffix>: for a topic of SIGNED_TOPICS the envelope
 * of `payload` under its label, null (not sent) when the element cannot sign it or it
 * exceeds `maxPayload`; any other topic's payload as it is.
 */
export async function topicPayload(
    signer: TelemetrySigner | null,
    suffix: string,
    payload: Buffer,
    maxPayload: number,
    log?: (line: string) => void
): Promise<Buffer | null> {
    const topic = signedTopic(suffix)
    if (topic === null) return payload
    return await signedPayload(signer, topic.label, topic.what, payload, maxPayload, log)
}

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
 * `body` in an envelope signed by the identity key under `label`, or the body alone when
 * the board has no secure element to sign with (`signer` null; docs/limits.md). Null when
 * the element cannot sign or the envelope exceeds `maxPayload`: such a message is not sent,
 * and `log` (diagnostics, quiet when absent) says why.
 */
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
