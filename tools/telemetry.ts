/**
 * Host side of signed telemetry (docs/telemetry.md; GP-TM-41): verifies an envelope a device
 * published offline, with the portable verifier (src/telemetry.ts) and the device public
 * key, as one kind (ENVELOPE_KINDS: health telemetry, update status, the owner's readings,
 * a privacy reply), and turns the message into JSON-friendly fields.
 */

import { cryptoSignatureCheck } from "../src/audit/verify"
import { TelemetryExpectation, TelemetryMessage, verifyTelemetry } from "../src/telemetry"
import { DATA_TELEMETRY_LABEL, OTA_STATUS_LABEL, PRIVACY_REPLY_LABEL } from "../src/telemetry"
import { TELEMETRY_LABEL } from "../src/telemetry"
import { SimCrypto } from "../sim/crypto"
import { UsageError } from "./args"

const crypto = new SimCrypto()
const MAX_U32 = 0xffffffff

/** The kinds of envelope by their name on the command line, each with its label and topic. */
export const ENVELOPE_KINDS: Record<string, { label: string; topic: string }> = {
    telemetry: { label: TELEMETRY_LABEL, topic: "telemetry" },
    "ota-status": { label: OTA_STATUS_LABEL, topic: "ota/status" },
    "data-telemetry": { label: DATA_TELEMETRY_LABEL, topic: "data/telemetry" },
    "privacy-reply": { label: PRIVACY_REPLY_LABEL, topic: "privacy/reply" },
}

/** The label of a kind named on the command line; UsageError for any other name. */
export function kindLabel(kind: string): string {
    const k = Object.hasOwn(ENVELOPE_KINDS, kind) ? ENVELOPE_KINDS[kind] : undefined
    if (k === undefined)
        throw new UsageError(`--kind must be one of ${Object.keys(ENVELOPE_KINDS).join(", ")}`)
    return k.label
}

/** Verifies envelope bytes; throws TelemetryError naming the first failed check. */
export async function verifyTelemetryBytes(
    devicePub: Buffer,
    bytes: Buffer,
    expect: TelemetryExpectation
): Promise<TelemetryMessage> {
    return await verifyTelemetry(cryptoSignatureCheck(crypto), devicePub, bytes, expect)
}

/** `BOOT:SEQ` (the last message accepted) as numbers; UsageError otherwise. */
export function parsePosition(text: string, name: string): { boot: number; seq: number } {
    const m = /^([0-9]{1,10}):([0-9]{1,10})$/.exec(text)
    const boot = m ? Number(m[1]) : -1
    const seq = m ? Number(m[2]) : -1
    if (boot < 0 || boot > MAX_U32 || seq < 0 || seq > MAX_U32)
        throw new UsageError(`--${name} must be BOOT:SEQ, two integers 0..${MAX_U32}`)
    return { boot, seq }
}

/** The body as JSON when it is JSON (the health body is), otherwise as text. */
function bodyValue(body: Buffer): unknown {
    const text = body.toString("utf8")
    try {
        return JSON.parse(text)
    } catch {
        return text
    }
}

/** The message as JSON-friendly fields: time null when the device did not know it. */
export function telemetryJson(m: TelemetryMessage): Record<string, unknown> {
    return {
        deviceId: m.deviceId,
        boot: m.boot,
        seq: m.seq,
        time: m.time === 0 ? null : m.time,
        body: bodyValue(m.body),
    }
}
