/**
 * Audit record frames (docs/audit-log.md, "Record format"; GP-TM-55): one security event,
 * framed so a torn write is detected (magic, length, CRC-32) and chained by hash (each
 * frame carries SHA-256 of the previous frame). Big-endian, byte for byte:
 *   magic u16 0xB7A1 | version u8 | kind u8 | length u16 | seq u32 | epoch u32 |
 *   time u32 | uptime u32 | prev hash [32] | outcome u8 | event len u8 + ASCII |
 *   actor len u8 + ASCII | detail len u16 + ASCII    (the body, then:)
 *   mac [32] | signature len u8 + bytes | crc32 u32 over every byte before it.
 */

import { concatBytes, readU16, readU32, writeU16, writeU32 } from "../../boot/bytes"
import { decimalDigits } from "../../boot/decimal"
import { CheckError } from "../../hal/errors"

export const RECORD_MAGIC = 0xb7a1
export const RECORD_VERSION = 1

export const KIND_EVENT = 1
/** Closes a key epoch; its signature by the device identity key anchors the chain. */
export const KIND_CHECKPOINT = 2
/** Written after the oldest sector was erased: says which records are gone. */
export const KIND_RECYCLE = 3

export const OUTCOMES = ["success", "failure", "refused", "info"]

export const HASH_LENGTH = 32
export const MAC_LENGTH = 32
export const SIGNATURE_LENGTH = 64
export const MAX_EVENT = 32
export const MAX_ACTOR = 32
export const MAX_DETAIL = 160
/** Wall time unknown. */
export const TIME_UNKNOWN = 0xffffffff

const FIXED_HEADER = 2 + 1 + 1 + 2 + 4 + 4 + 4 + 4 + HASH_LENGTH
/** The smallest frame: a one-letter event, empty actor and detail, no signature. */
export const MIN_FRAME = FIXED_HEADER + 1 + 1 + 1 + 1 + 2 + MAC_LENGTH + 1 + 4
export const MAX_FRAME =
    FIXED_HEADER + 1 + 1 + MAX_EVENT + 1 + MAX_ACTOR + 2 + MAX_DETAIL + MAC_LENGTH + 1 +
    SIGNATURE_LENGTH + 4

/** What a caller asks to record. Text is ASCII; anything else is replaced by '?'. */
export interface AuditEntry {
    event: string
    actor: string
    /** One of OUTCOMES. */
    outcome: string
    detail: string
}

export interface AuditRecord extends AuditEntry {
    kind: number
    seq: number
    epoch: number
    /** Seconds since the epoch, or null when the device did not know the time. */
    time: number | null
    uptimeMs: number
    prevHash: Buffer
    mac: Buffer
    signature: Buffer
    /** The body: every byte the MAC and a checkpoint signature cover, up to the MAC. */
    body: Buffer
    /** The whole frame (no padding); the chain hashes exactly these bytes. */
    frame: Buffer
}

/** "frame" (not a frame at all) or "crc" (a frame whose check value is wrong). */
export class RecordError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "RecordError"
    }
}

/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bitwise: no table in RAM. */
export function crc32(buf: Buffer, start: number, end: number): number {
    let crc = 0xffffffff
    for (let i = start; i < end; i++) {
        crc = crc ^ buf[i]
        for (let k = 0; k < 8; k++) {
            const lsb = crc & 1
            crc = crc >>> 1
            if (lsb) crc = crc ^ 0xedb88320
        }
    }
    return (crc ^ 0xffffffff) >>> 0
}

/** An unsigned integer in decimal, exactly (DeviceScript prints large numbers lossily). */
export function uintText(value: number): string {
    if (value < 0 || Math.floor(value) !== value) return "?"
    return decimalDigits(value)
}

/** Printable ASCII only, cut to `max` bytes; other characters become '?'. */
export function cleanText(value: string, max: number): string {
    let out = ""
    for (let i = 0; i < value.length && out.length < max; i++) {
        const c = value.charCodeAt(i)
        out += c >= 0x20 && c < 0x7f ? value.charAt(i) : "?"
    }
    return out
}

/** Event names: 1 to 32 of a-z, 0-9 and '-' (stable names, docs/audit-log.md). */
export function isEventName(value: string): boolean {
    if (value.length < 1 || value.length > MAX_EVENT) return false
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) return false
    }
    return true
}

export interface BodyFields {
    kind: number
    /** 0, or SIGNATURE_LENGTH for a signed checkpoint: the frame length depends on it. */
    signatureLength: number
    seq: number
    epoch: number
    time: number | null
    uptimeMs: number
    prevHash: Buffer
    entry: AuditEntry
}

/**
 * Builds the body of a frame. The length field already holds the whole frame's length,
 * so the MAC and a checkpoint signature over the body cover it too.
 */
export function encodeBody(fields: BodyFields): Buffer {
    const entry = fields.entry
    if (!isEventName(entry.event)) throw new RecordError("frame", "event name")
    const outcome = OUTCOMES.indexOf(entry.outcome)
    if (outcome < 0) throw new RecordError("frame", "outcome")
    if (fields.prevHash.length !== HASH_LENGTH) throw new RecordError("frame", "prev hash")
    const event = Buffer.from(entry.event)
    const actor = Buffer.from(cleanText(entry.actor, MAX_ACTOR))
    const detail = Buffer.from(cleanText(entry.detail, MAX_DETAIL))

    const head = Buffer.alloc(FIXED_HEADER)
    writeU16(head, 0, RECORD_MAGIC)
    head[2] = RECORD_VERSION
    head[3] = fields.kind
    writeU32(head, 6, fields.seq)
    writeU32(head, 10, fields.epoch)
    writeU32(head, 14, fields.time === null ? TIME_UNKNOWN : fields.time)
    writeU32(head, 18, Math.min(fields.uptimeMs, 0xffffffff))
    for (let i = 0; i < HASH_LENGTH; i++) head[22 + i] = fields.prevHash[i]

    const lens = Buffer.alloc(2)
    lens[0] = outcome
    lens[1] = event.length
    const actorLen = Buffer.alloc(1)
    actorLen[0] = actor.length
    const detailLen = Buffer.alloc(2)
    writeU16(detailLen, 0, detail.length)
    if (fields.signatureLength !== 0 && fields.signatureLength !== SIGNATURE_LENGTH)
        throw new RecordError("frame", "signature length")
    const body = concatBytes([head, lens, event, actorLen, actor, detailLen, detail])
    writeU16(body, 4, body.length + MAC_LENGTH + 1 + fields.signatureLength + 4)
    return body
}

/** Appends MAC, signature and CRC to a body made by `encodeBody`. */
export function sealFrame(body: Buffer, mac: Buffer, signature: Buffer): Buffer {
    if (mac.length !== MAC_LENGTH) throw new RecordError("frame", "mac length")
    const sigLen = Buffer.alloc(1)
    sigLen[0] = signature.length
    const frame = concatBytes([body, mac, sigLen, signature, Buffer.alloc(4)])
    if (readU16(body, 4) !== frame.length) throw new RecordError("frame", "signature length")
    writeU32(frame, frame.length - 4, crc32(frame, 0, frame.length - 4))
    return frame
}

/**
 * Reads the frame length at `offset` if the bytes there start like a frame, else 0.
 * Used while scanning flash, before the whole frame is checked.
 */
export function frameLengthAt(buf: Buffer, offset: number): number {
    if (offset + 6 > buf.length) return 0
    if (readU16(buf, offset) !== RECORD_MAGIC || buf[offset + 2] !== RECORD_VERSION) return 0
    const length = readU16(buf, offset + 4)
    if (length < MIN_FRAME || length > MAX_FRAME || offset + length > buf.length) return 0
    return length
}

function asciiAt(buf: Buffer, start: number, length: number): string {
    for (let i = start; i < start + length; i++)
        if (buf[i] < 0x20 || buf[i] >= 0x7f) throw new RecordError("frame", "text")
    return buf.slice(start, start + length).toString()
}

/**
 * Parses one frame (exactly `frame.length` bytes). Every length is checked before use;
 * RecordError "crc" when only the check value is wrong, "frame" for anything else.
 */
export function decodeFrame(frame: Buffer): AuditRecord {
    if (frame.length < MIN_FRAME || frame.length > MAX_FRAME)
        throw new RecordError("frame", "length")
    if (readU16(frame, 0) !== RECORD_MAGIC) throw new RecordError("frame", "magic")
    if (frame[2] !== RECORD_VERSION) throw new RecordError("frame", "version")
    const kind = frame[3]
    if (kind !== KIND_EVENT && kind !== KIND_CHECKPOINT && kind !== KIND_RECYCLE)
        throw new RecordError("frame", "kind")
    if (readU16(frame, 4) !== frame.length) throw new RecordError("frame", "length field")
    if (crc32(frame, 0, frame.length - 4) !== readU32(frame, frame.length - 4))
        throw new RecordError("crc", "check value")

    let p = FIXED_HEADER
    const outcome = frame[p]
    const eventLen = frame[p + 1]
    p += 2
    if (outcome >= OUTCOMES.length) throw new RecordError("frame", "outcome")
    if (eventLen < 1 || eventLen > MAX_EVENT || p + eventLen + 1 > frame.length)
        throw new RecordError("frame", "event length")
    const event = asciiAt(frame, p, eventLen)
    if (!isEventName(event)) throw new RecordError("frame", "event name")
    p += eventLen
    const actorLen = frame[p]
    p += 1
    if (actorLen > MAX_ACTOR || p + actorLen + 2 > frame.length)
        throw new RecordError("frame", "actor length")
    const actor = asciiAt(frame, p, actorLen)
    p += actorLen
    const detailLen = readU16(frame, p)
    p += 2
    if (detailLen > MAX_DETAIL || p + detailLen > frame.length)
        throw new RecordError("frame", "detail length")
    const detail = asciiAt(frame, p, detailLen)
    p += detailLen
    const bodyEnd = p
    if (bodyEnd + MAC_LENGTH + 1 + 4 > frame.length) throw new RecordError("frame", "mac")
    const sigLen = frame[bodyEnd + MAC_LENGTH]
    if (sigLen !== 0 && sigLen !== SIGNATURE_LENGTH) throw new RecordError("frame", "signature")
    if (bodyEnd + MAC_LENGTH + 1 + sigLen + 4 !== frame.length)
        throw new RecordError("frame", "trailing bytes")

    const time = readU32(frame, 14)
    return {
        kind: kind,
        seq: readU32(frame, 6),
        epoch: readU32(frame, 10),
        time: time === TIME_UNKNOWN ? null : time,
        uptimeMs: readU32(frame, 18),
        prevHash: frame.slice(22, 22 + HASH_LENGTH),
        event: event,
        actor: actor,
        outcome: OUTCOMES[outcome],
        detail: detail,
        mac: frame.slice(bodyEnd, bodyEnd + MAC_LENGTH),
        signature: frame.slice(bodyEnd + MAC_LENGTH + 1, bodyEnd + MAC_LENGTH + 1 + sigLen),
        body: frame.slice(0, bodyEnd),
        frame: frame,
    }
}

/** `key=<digits>` from a detail text, or -1. */
export function detailNumber(detail: string, key: string): number {
    const words = detail.split(" ")
    for (let i = 0; i < words.length; i++) {
        const w = words[i]
        if (w.length <= key.length + 1 || w.slice(0, key.length + 1) !== key + "=") continue
        let value = 0
        for (let j = key.length + 1; j < w.length; j++) {
            const c = w.charCodeAt(j)
            if (c < 0x30 || c > 0x39) return -1
            value = value * 10 + (c - 0x30)
        }
        return value
    }
    return -1
}
