/**
 * Inbound routes of the running app (GP-TM-46, GP-TM-54, GP-TM-55): bulwark/<id>/ota/...
 * to the update agent and bulwark/<id>/audit/export-request to the operator-signed audit
 * export. Each decoder checks the topic first, then takes a "commands" token; the device's
 * own messages that come back through its subscription are ignored, not refused.
 */

import { UpdateAgent } from "../ota/agent"
import { ExportContext, handleMqttExportRequest } from "./audit/export"
import { admitCommand } from "./app-audit"
import { MessageError } from "./messages"
import { RateLimiter } from "./ratelimit"

/** Sends one message on bulwark/<deviceId>/<suffix>; `reliable`: QoS 1, kept while offline. */
export type AppPublish = (suffix: string, payload: Buffer, reliable: boolean) => Promise<void>

export interface InboundMessage {
    kind: string
    payload: Buffer
}

/** A message of the device's own that came back through its subscription: ignored. */
export const OWN_ECHO = "own"

/**
 * Inbound bulwark/<id>/ota/...: offers are commands (a token each); chunks answer the
 * agent's own requests, which the agent checks against what it asked for; the device's
 * status and requests come back and are ignored; anything else is refused.
 */
export function otaDecoder(limiter: RateLimiter): (p: Buffer, path: string[]) => InboundMessage {
    return function (payload: Buffer, path: string[]): InboundMessage {
        if (path.length !== 1) throw new MessageError("topic", "ota subtopic")
        const kind = path[0]
        if (kind === "status" || kind === "request") return { kind: OWN_ECHO, payload: payload }
        if (kind !== "offer" && kind !== "chunk") throw new MessageError("topic", "ota subtopic")
        if (kind === "offer") admitCommand(limiter, "ota")
        return { kind: kind, payload: payload }
    }
}

export function otaHandler(agent: UpdateAgent): (m: InboundMessage, path: string[]) => Promise<void> {
    return async function (m: InboundMessage, path: string[]): Promise<void> {
        if (m.kind === "offer") await agent.handleOffer(m.payload)
        else if (m.kind === "chunk") await agent.handleChunk(m.payload)
    }
}

/** Inbound bulwark/<id>/audit/...: only export-request; export pieces and results echo back. */
export function auditDecoder(limiter: RateLimiter): (p: Buffer, path: string[]) => InboundMessage {
    return function (payload: Buffer, path: string[]): InboundMessage {
        if (path.length === 1 && path[0] === "export-request") {
            admitCommand(limiter, "audit")
            return { kind: "export-request", payload: payload }
        }
        const echo =
            (path.length === 1 && path[0] === "export-result") ||
            (path.length === 2 && path[0] === "export")
        if (!echo) throw new MessageError("topic", "audit subtopic")
        return { kind: OWN_ECHO, payload: payload }
    }
}

/**
 * Serves an operator-signed export request (src/audit/export.ts): the pieces and the
 * result go to the device's own audit/ topics; a refused request gets "refused" only and
 * its reason goes to the audit log (GP-TM-53, GP-TM-55).
 */
export function auditHandler(
    ctx: ExportContext,
    publish: AppPublish,
    gate: ExportGate
): (m: InboundMessage, path: string[]) => Promise<void> {
    return async function (m: InboundMessage, path: string[]): Promise<void> {
        if (m.kind !== "export-request") return
        gate.busy = true
        try {
            await handleMqttExportRequest(ctx, m.payload, async function (suffix, piece) {
                await publish(suffix, piece, true)
            })
        } finally {
            gate.busy = false
        }
    }
}

/**
 * Set while an export is streamed: the app's own records wait, because an export counts
 * the records first and then streams them, and one appended between would not match.
 */
export interface ExportGate {
    busy: boolean
}
