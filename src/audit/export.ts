/**
 * Audit-log export (docs/audit-log.md, "Export"; GP-TM-55): only on an authenticated
 * request, either an operator-signed request (MQTT path) or the logged-in owner on the
 * local console, and always audited as "log-export". The export is a header signed by the
 * device identity key (head hash, first sequence number, count) and the stored frames.
 */

import { concatBytes, readU16, readU32, writeU16, writeU32 } from "../../boot/bytes"
import { Clock } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { CheckError, SecureElementError } from "../../hal/errors"
import { SE_SLOT_IDENTITY, SecureElement } from "../../hal/secure-element"
import { EVENTS, EXPORT_LABEL, EXPORT_REQUEST_LABEL, signedDigest } from "./chain"
import { checkOperatorRequest } from "../operator-request"
import { AuditLog } from "./log"
import { HASH_LENGTH, SIGNATURE_LENGTH, uintText } from "./record"

export const EXPORT_MAGIC = "BWAX"
export const REQUEST_MAGIC = "BWXR"
export const EXPORT_VERSION = 1
export const NONCE_LENGTH = 16
export const PUBLIC_KEY_LENGTH = 65
export const NO_BAD_SEQ = 0xffffffff
const MAX_DEVICE_ID = 64

/**
 * Checks: "format" (not a request), "device" (for another device), "operator" (key not
 * authorised), "signature", "expired", "replayed", "identity" (the device cannot sign).
 * The check is for the audit log; replies that leave the device only say "refused".
 */
export class ExportError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "ExportError"
    }
}

/** An operator's request: signed over EXPORT_REQUEST_LABEL || every byte before the signature. */
export interface ExportRequest {
    deviceId: string
    nonce: Buffer
    fromSeq: number
    /** Wall-clock seconds after which the device refuses it; 0 for none. */
    expires: number
    operatorKey: Buffer
    signature: Buffer
    /** The bytes the signature covers (without the label). */
    signedPart: Buffer
}

function asciiId(value: string): Buffer {
    const id = Buffer.from(value)
    if (id.length < 1 || id.length > MAX_DEVICE_ID) throw new ExportError("format", "device id")
    return id
}

/** The unsigned part of a request, for the operator's tool to sign. */
export function encodeRequestBody(
    deviceId: string,
    nonce: Buffer,
    fromSeq: number,
    expires: number,
    operatorKey: Buffer
): Buffer {
    if (nonce.length !== NONCE_LENGTH) throw new ExportError("format", "nonce")
    if (operatorKey.length !== PUBLIC_KEY_LENGTH) throw new ExportError("format", "operator key")
    const id = asciiId(deviceId)
    const head = Buffer.alloc(6)
    const magic = Buffer.from(REQUEST_MAGIC)
    for (let i = 0; i < 4; i++) head[i] = magic[i]
    head[4] = EXPORT_VERSION
    head[5] = id.length
    const nums = Buffer.alloc(8)
    writeU32(nums, 0, fromSeq)
    writeU32(nums, 4, expires)
    return concatBytes([head, id, nonce, nums, operatorKey])
}

/** The message an operator signs (ECDSA P-256 with SHA-256). */
export function requestMessage(body: Buffer): Buffer {
    return concatBytes([Buffer.from(EXPORT_REQUEST_LABEL), body])
}

/** Parses a request; every length is checked before use. */
export function decodeRequest(bytes: Buffer): ExportRequest {
    if (bytes.length < 6 || bytes.slice(0, 4).toString() !== REQUEST_MAGIC)
        throw new ExportError("format", "magic")
    if (bytes[4] !== EXPORT_VERSION) throw new ExportError("format", "version")
    const idLen = bytes[5]
    const bodyLen = 6 + idLen + NONCE_LENGTH + 8 + PUBLIC_KEY_LENGTH
    if (idLen < 1 || idLen > MAX_DEVICE_ID || bytes.length !== bodyLen + SIGNATURE_LENGTH)
        throw new ExportError("format", "length")
    let p = 6
    const deviceId = bytes.slice(p, p + idLen).toString()
    p += idLen
    const nonce = bytes.slice(p, p + NONCE_LENGTH)
    p += NONCE_LENGTH
    const fromSeq = readU32(bytes, p)
    const expires = readU32(bytes, p + 4)
    p += 8
    const operatorKey = bytes.slice(p, p + PUBLIC_KEY_LENGTH)
    return {
        deviceId: deviceId,
        nonce: nonce,
        fromSeq: fromSeq,
        expires: expires,
        operatorKey: operatorKey,
        signature: bytes.slice(bodyLen),
        signedPart: bytes.slice(0, bodyLen),
    }
}

/** What the device needs to serve exports. */
export interface ExportContext {
    log: AuditLog
    secureElement: SecureElement
    crypto: Crypto
    clock: Clock
    deviceId: string
    /** Operator public keys (65-byte P-256) allowed to ask for exports (device profile). */
    operatorKeys: Buffer[]
    /** Nonces of recent requests (kept in RAM; a few suffice against replays). */
    recentNonces: string[]
}

/**
 * Verifies an operator's request: right device, listed operator key, valid signature
 * (checked by the secure element), not expired when the device knows the time, nonce not
 * seen since boot. Throws ExportError naming the failed check.
 */
export async function authorizeRequest(
    ctx: ExportContext,
    request: ExportRequest
): Promise<void> {
    const refused = await checkOperatorRequest(ctx, {
        deviceId: request.deviceId,
        operatorKey: request.operatorKey,
        digest: signedDigest(ctx.crypto, requestMessage(request.signedPart)),
        signature: request.signature,
        expires: request.expires,
        nonce: request.nonce,
    })
    if (refused !== null) throw new ExportError(refused.check, refused.message)
}

/** Receives the export in pieces: the header first, then one piece per record. */
export type ExportSink = (piece: Buffer) => Promise<void>

/** Header fields, in order: see docs/audit-log.md. */
export interface ExportHeader {
    deviceId: string
    nonce: Buffer
    firstSeq: number
    count: number
    headSeq: number
    headHash: Buffer
    /** First sequence number the device itself found bad, or NO_BAD_SEQ. */
    deviceBadSeq: number
    time: number | null
}

export function encodeHeaderBody(h: ExportHeader): Buffer {
    const id = asciiId(h.deviceId)
    const head = Buffer.alloc(7)
    const magic = Buffer.from(EXPORT_MAGIC)
    for (let i = 0; i < 4; i++) head[i] = magic[i]
    head[4] = EXPORT_VERSION
    head[5] = 0
    head[6] = id.length
    const nums = Buffer.alloc(12)
    writeU32(nums, 0, h.firstSeq)
    writeU32(nums, 4, h.count)
    writeU32(nums, 8, h.headSeq)
    const tail = Buffer.alloc(8)
    writeU32(tail, 0, h.deviceBadSeq)
    writeU32(tail, 4, h.time === null ? 0xffffffff : h.time)
    return concatBytes([head, id, h.nonce, nums, h.headHash, tail])
}

export function exportMessage(headerBody: Buffer): Buffer {
    return concatBytes([Buffer.from(EXPORT_LABEL), headerBody])
}

/** One record as it travels in an export: u16 length, then the frame. */
export function exportEntry(frame: Buffer): Buffer {
    const len = Buffer.alloc(2)
    writeU16(len, 0, frame.length)
    return concatBytes([len, frame])
}

/** Parses the header at the start of an export; returns it and where the records begin. */
export function decodeHeader(bytes: Buffer): {
    header: ExportHeader
    body: Buffer
    signature: Buffer
    next: number
} {
    if (bytes.length < 7 || bytes.slice(0, 4).toString() !== EXPORT_MAGIC)
        throw new ExportError("format", "magic")
    if (bytes[4] !== EXPORT_VERSION || bytes[5] !== 0) throw new ExportError("format", "version")
    const idLen = bytes[6]
    const bodyLen = 7 + idLen + NONCE_LENGTH + 12 + HASH_LENGTH + 8
    if (idLen < 1 || idLen > MAX_DEVICE_ID || bytes.length < bodyLen + 1)
        throw new ExportError("format", "header length")
    const sigLen = bytes[bodyLen]
    if (sigLen !== SIGNATURE_LENGTH || bytes.length < bodyLen + 1 + sigLen)
        throw new ExportError("format", "signature length")
    let p = 7
    const deviceId = bytes.slice(p, p + idLen).toString()
    p += idLen
    const nonce = bytes.slice(p, p + NONCE_LENGTH)
    p += NONCE_LENGTH
    const firstSeq = readU32(bytes, p)
    const count = readU32(bytes, p + 4)
    const headSeq = readU32(bytes, p + 8)
    p += 12
    const headHash = bytes.slice(p, p + HASH_LENGTH)
    p += HASH_LENGTH
    const deviceBadSeq = readU32(bytes, p)
    const time = readU32(bytes, p + 4)
    return {
        header: {
            deviceId: deviceId,
            nonce: nonce,
            firstSeq: firstSeq,
            count: count,
            headSeq: headSeq,
            headHash: headHash,
            deviceBadSeq: deviceBadSeq,
            time: time === 0xffffffff ? null : time,
        },
        body: bytes.slice(0, bodyLen),
        signature: bytes.slice(bodyLen + 1, bodyLen + 1 + sigLen),
        next: bodyLen + 1 + sigLen,
    }
}

/** Reads the u16-prefixed record entries that follow the header. */
export function splitEntries(bytes: Buffer, start: number): { frames: Buffer[]; bad: number } {
    const frames: Buffer[] = []
    let p = start
    while (p < bytes.length) {
        if (p + 2 > bytes.length) return { frames: frames, bad: frames.length }
        const len = readU16(bytes, p)
        if (len === 0 || p + 2 + len > bytes.length) return { frames: frames, bad: frames.length }
        frames.push(bytes.slice(p + 2, p + 2 + len))
        p += 2 + len
    }
    return { frames: frames, bad: -1 }
}

/**
 * Streams the log from `fromSeq` (or the oldest record kept) to the head: the device first
 * re-checks its own log, then signs a header over what it is about to send. The range is
 * a snapshot taken before counting: records appended meanwhile are left for the next
 * export, and the pieces are exactly the records the header counts.
 */
export async function writeExport(
    ctx: ExportContext,
    nonce: Buffer,
    fromSeq: number,
    sink: ExportSink
): Promise<ExportHeader> {
    const integrity = await ctx.log.verifyStored()
    const snap = ctx.log.snapshot(fromSeq)
    try {
        let count = 0
        await snap.forEach(async () => {
            count++
        })
        const head = snap.head
        const header: ExportHeader = {
            deviceId: ctx.deviceId,
            nonce: nonce,
            firstSeq: snap.first,
            count: count,
            headSeq: head ? head.seq : 0,
            headHash: head ? head.hash : Buffer.alloc(HASH_LENGTH),
            deviceBadSeq: integrity.ok ? NO_BAD_SEQ : integrity.firstBadSeq,
            time: ctx.clock.wallTime(),
        }
        const body = encodeHeaderBody(header)
        let signature: Buffer
        try {
            signature = await ctx.secureElement.signDigest(
                SE_SLOT_IDENTITY,
                signedDigest(ctx.crypto, exportMessage(body))
            )
        } catch (e) {
            if (e instanceof SecureElementError)
                throw new ExportError("identity", "no identity key")
            throw e
        }
        const sigLen = Buffer.alloc(1)
        sigLen[0] = signature.length
        await sink(concatBytes([body, sigLen, signature]))
        await snap.forEach(async (record) => {
            await sink(exportEntry(record.frame))
        })
        return header
    } finally {
        ctx.log.release(snap)
    }
}

/**
 * The MQTT path: authorises an operator-signed request, audits the decision as
 * "log-export", and streams the export on success. Resolves with the check that refused
 * it ("ok" when served); the reply to the operator should carry no more than ok/refused.
 */
export async function serveExportRequest(
    ctx: ExportContext,
    requestBytes: Buffer,
    sink: ExportSink
): Promise<string> {
    let request: ExportRequest
    try {
        request = decodeRequest(requestBytes)
        await authorizeRequest(ctx, request)
    } catch (e) {
        if (!(e instanceof ExportError)) throw e
        await ctx.log.append({
            event: EVENTS.logExport,
            actor: "mqtt",
            outcome: "refused",
            detail: "check=" + e.check,
        })
        return e.check
    }
    await ctx.log.append({
        event: EVENTS.logExport,
        actor: "operator:" + ctx.crypto.sha256([request.operatorKey]).toString("hex").slice(0, 16),
        outcome: "success",
        detail: "from=" + uintText(request.fromSeq),
    })
    await writeExport(ctx, request.nonce, request.fromSeq, sink)
    return "ok"
}

/** The local-console path: the owner is already logged in; the export is audited too. */
export async function serveConsoleExport(
    ctx: ExportContext,
    actor: string,
    nonce: Buffer,
    sink: ExportSink
): Promise<ExportHeader> {
    await ctx.log.append({
        event: EVENTS.logExport,
        actor: actor,
        outcome: "success",
        detail: "from=0",
    })
    return await writeExport(ctx, nonce, 0, sink)
}

/** Publishes one message on bulwark/<deviceId>/<suffix> (the session's publish). */
export type ExportPublish = (suffix: string, payload: Buffer) => Promise<void>

/** The operator's answer: ok with the piece count, or "refused" and nothing more (GP-TM-53). */
export function exportReply(check: string, pieces: number): Buffer {
    if (check !== "ok") return Buffer.from('{"ok":false,"error":"refused"}')
    return Buffer.from('{"ok":true,"pieces":' + uintText(pieces) + "}")
}

/**
 * The MQTT path, for a request on bulwark/<id>/audit/export-request: pieces go out on
 * audit/export/<n> (n from 0), then the answer on audit/export-result.
 */
export async function handleMqttExportRequest(
    ctx: ExportContext,
    payload: Buffer,
    publish: ExportPublish
): Promise<string> {
    let pieces = 0
    const check = await serveExportRequest(ctx, payload, async (piece: Buffer) => {
        await publish("audit/export/" + uintText(pieces), piece)
        pieces++
    })
    await publish("audit/export-result", exportReply(check, pieces))
    return check
}
