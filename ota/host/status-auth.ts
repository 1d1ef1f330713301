/**
 * The operator's check of update status reports (docs/update-format.md, "Status report";
 * GP-TM-41, GP-TM-18): a device signs each report on bulwark/<id>/ota/status with its
 * identity key, in the telemetry envelope under the label OTA_STATUS_LABEL. The publisher
 * takes a report as the device's only when it verifies with that device's registered key,
 * names that device, and comes after the last one accepted from it in (boot, seq) order.
 */

import { AgentStatus, decodeStatus } from "../agent-wire"
import { CheckError } from "../../hal/errors"
import {
    decodeTelemetry,
    OTA_STATUS_LABEL,
    TELEMETRY_MAGIC,
    TelemetryError,
    TelemetryPosition,
} from "../../src/telemetry"
import { verifyTelemetryBytes } from "../../tools/telemetry"

/**
 * Why a status was not taken: "unsigned" (not an envelope while a key is known), "format"
 * (a malformed envelope), "signature" (not signed by this device's key as a status report:
 * another key, or another kind such as telemetry), "device" (signed for another device),
 * "replayed" (the last status accepted, again: also a QoS 1 redelivery), "order" (older
 * than the last one accepted), "status" (the signed body is not a status report).
 */
export class StatusAuthError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "StatusAuthError"
    }
}

/** What the publisher knows of a device when one of its statuses arrives. */
export interface StatusSource {
    deviceId: string
    /** Its 65-byte identity public key; null only when unsigned statuses were accepted for it. */
    publicKey: Buffer | null
    /** The (boot, seq) of its last status accepted; null before the first. */
    after: TelemetryPosition | null
}

export interface ReadStatus {
    status: AgentStatus
    /** Where the status stands in the device's order; null when it was not signed-checked. */
    position: TelemetryPosition | null
}

function isEnvelope(payload: Buffer): boolean {
    return payload.subarray(0, 4).toString("latin1") === TELEMETRY_MAGIC
}

function statusOf(body: Buffer): AgentStatus {
    try {
        return decodeStatus(body)
    } catch {
        throw new StatusAuthError("status", "the body is not a status report")
    }
}

/**
 * Reads a status payload of `source.deviceId`. With a key: the envelope must verify as a
 * status report of this device, after `source.after`. Without (the operator's explicit
 * --accept-unsigned-status): the JSON, or an envelope's body unverified. Throws
 * StatusAuthError naming the check.
 */
export async function readStatus(payload: Buffer, source: StatusSource): Promise<ReadStatus> {
    const key = source.publicKey
    if (key === null) {
        if (!isEnvelope(payload)) return { status: statusOf(payload), position: null }
        let parsed
        try {
            parsed = decodeTelemetry(payload)
        } catch {
            throw new StatusAuthError("format", "not a well-formed envelope")
        }
        if (parsed.message.deviceId !== source.deviceId)
            throw new StatusAuthError("device", "another device's status")
        return { status: statusOf(parsed.message.body), position: null }
    }
    if (!isEnvelope(payload)) throw new StatusAuthError("unsigned", "the status is not signed")
    let m
    try {
        m = await verifyTelemetryBytes(key, payload, {
            deviceId: source.deviceId,
            after: source.after,
            label: OTA_STATUS_LABEL,
        })
    } catch (err) {
        if (err instanceof TelemetryError) throw new StatusAuthError(err.check, err.message)
        throw err
    }
    return { status: statusOf(m.body), position: { boot: m.boot, seq: m.seq } }
}
