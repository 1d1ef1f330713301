/**
 * What the update agent and the publisher exchange besides the offer (docs/update-format.md;
 * GP-TM-18, GP-TM-54): chunk and range requests (device to publisher), chunks (publisher to
 * device) and status reports. Binary messages are fixed-layout and checked field by field before
 * use; the status is a small JSON object the operator's tools read.
 */

import { concatBytes, isUint, readU32, writeU32 } from "../boot/bytes"
import { SignatureReport } from "../boot/image-format"
import { CheckError } from "../hal/errors"

export const REQUEST_MAGIC = "BWRQ"
/** Asks for a run of consecutive chunks in one message (one publish, one rate-limit token). */
export const RANGE_REQUEST_MAGIC = "BWRR"
export const CHUNK_MAGIC = "BWCK"
/** Asks for the chunk table of a version 2 offer (on the request topic). */
export const TABLE_REQUEST_MAGIC = "BWTQ"
/** The chunk table (on the chunk topic): head, then one SHA-256 per chunk. */
export const TABLE_MAGIC = "BWTB"
export const REQUEST_SIZE = 16
export const CHUNK_HEAD_SIZE = 16
/** Largest chunk a request may ask for (the profile's chunkSize is at most this). */
export const MAX_CHUNK = 65536
export const RANGE_REQUEST_SIZE = 20
/** Most chunks one range request may ask for. */
export const MAX_RANGE_CHUNKS = 16
/** Most bytes one range request may ask for: chunk count x chunk size. */
export const MAX_RANGE_BYTES = 65536

/** Topic suffixes under bulwark/<deviceId>/. */
export const TOPIC_OFFER = "ota/offer"
export const TOPIC_REQUEST = "ota/request"
export const TOPIC_CHUNK = "ota/chunk"
export const TOPIC_STATUS = "ota/status"

export class WireError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "WireError"
    }
}

export interface ChunkRequest {
    sequence: number
    offset: number
    length: number
}

/** `count` chunks of `chunkSize` bytes from `offset`; the publisher clips at the image end. */
export interface RangeRequest {
    sequence: number
    offset: number
    chunkSize: number
    count: number
}

export interface Chunk {
    sequence: number
    offset: number
    data: Buffer
}

function hasMagic(bytes: Buffer, magic: string): boolean {
    const m = Buffer.from(magic)
    for (let i = 0; i < 4; i++) if (bytes[i] !== m[i]) return false
    return true
}

function head(magic: string, sequence: number, offset: number, length: number): Buffer {
    const out = Buffer.alloc(16)
    const m = Buffer.from(magic)
    for (let i = 0; i < 4; i++) out[i] = m[i]
    writeU32(out, 4, sequence)
    writeU32(out, 8, offset)
    writeU32(out, 12, length)
    return out
}

export function encodeRequest(request: ChunkRequest): Buffer {
    return head(REQUEST_MAGIC, request.sequence, request.offset, request.length)
}

/** WireError "request" unless exactly 16 bytes with the magic and a length of 1..MAX_CHUNK. */
export function decodeRequest(bytes: Buffer): ChunkRequest {
    if (bytes.length !== REQUEST_SIZE || !hasMagic(bytes, REQUEST_MAGIC))
        throw new WireError("request", "not a chunk request")
    const length = readU32(bytes, 12)
    if (length < 1 || length > MAX_CHUNK) throw new WireError("request", "length out of range")
    return { sequence: readU32(bytes, 4), offset: readU32(bytes, 8), length: length }
}

export function encodeRangeRequest(request: RangeRequest): Buffer {
    const out = Buffer.alloc(RANGE_REQUEST_SIZE)
    const m = Buffer.from(RANGE_REQUEST_MAGIC)
    for (let i = 0; i < 4; i++) out[i] = m[i]
    writeU32(out, 4, request.sequence)
    writeU32(out, 8, request.offset)
    writeU32(out, 12, request.chunkSize)
    writeU32(out, 16, request.count)
    return out
}

/**
 * WireError "request" unless exactly 20 bytes with the magic, a chunk size of 1..MAX_CHUNK,
 * a count of 1..MAX_RANGE_CHUNKS and at most MAX_RANGE_BYTES asked for in all.
 */
export function decodeRangeRequest(bytes: Buffer): RangeRequest {
    if (bytes.length !== RANGE_REQUEST_SIZE || !hasMagic(bytes, RANGE_REQUEST_MAGIC))
        throw new WireError("request", "not a range request")
    const chunkSize = readU32(bytes, 12)
    if (chunkSize < 1 || chunkSize > MAX_CHUNK)
        throw new WireError("request", "chunk size out of range")
    const count = readU32(bytes, 16)
    if (count < 1 || count > MAX_RANGE_CHUNKS)
        throw new WireError("request", "chunk count out of range")
    if (count * chunkSize > MAX_RANGE_BYTES)
        throw new WireError("request", "range over MAX_RANGE_BYTES")
    return {
        sequence: readU32(bytes, 4),
        offset: readU32(bytes, 8),
        chunkSize: chunkSize,
        count: count,
    }
}

/**
 * The single-chunk requests a range stands for, in order, clipped at `imageSize` (the last
 * one short); none when the range starts at or past the end.
 */
export function rangeChunks(range: RangeRequest, imageSize: number): ChunkRequest[] {
    const out: ChunkRequest[] = []
    let offset = range.offset
    for (let i = 0; i < range.count && offset < imageSize; i++) {
        const left = imageSize - offset
        const length = left < range.chunkSize ? left : range.chunkSize
        out.push({ sequence: range.sequence, offset: offset, length: length })
        offset = offset + length
    }
    return out
}

export function encodeChunk(chunk: Chunk): Buffer {
    return concatBytes([
        head(CHUNK_MAGIC, chunk.sequence, chunk.offset, chunk.data.length),
        chunk.data,
    ])
}

/** WireError "chunk" unless the head has the magic and its length matches what follows. */
export function decodeChunk(bytes: Buffer): Chunk {
    if (bytes.length < CHUNK_HEAD_SIZE || !hasMagic(bytes, CHUNK_MAGIC))
        throw new WireError("chunk", "not a chunk")
    const length = readU32(bytes, 12)
    if (length > MAX_CHUNK || bytes.length !== CHUNK_HEAD_SIZE + length)
        throw new WireError("chunk", "length does not match")
    return {
        sequence: readU32(bytes, 4),
        offset: readU32(bytes, 8),
        data: bytes.slice(CHUNK_HEAD_SIZE, CHUNK_HEAD_SIZE + length),
    }
}

export interface ChunkTable {
    sequence: number
    chunkSize: number
    /** The concatenated SHA-256 of every chunk, 32 bytes each. */
    hashes: Buffer
}

export function encodeTableRequest(sequence: number): Buffer {
    return head(TABLE_REQUEST_MAGIC, sequence, 0, 0)
}

/** The offer sequence of a table request, or -1 when `bytes` is not one. */
export function decodeTableRequest(bytes: Buffer): number {
    if (bytes.length !== REQUEST_SIZE || !hasMagic(bytes, TABLE_REQUEST_MAGIC)) return -1
    return readU32(bytes, 4)
}

export function encodeTable(table: ChunkTable): Buffer {
    const count = Math.floor(table.hashes.length / 32)
    return concatBytes([head(TABLE_MAGIC, table.sequence, table.chunkSize, count), table.hashes])
}

/**
 * WireError "table" unless the head has the magic, 1 to `maxEntries` entries and exactly
 * 32 bytes per entry follow. The entries are checked against the offer by the caller.
 */
export function decodeTable(bytes: Buffer, maxEntries: number): ChunkTable {
    if (bytes.length < CHUNK_HEAD_SIZE || !hasMagic(bytes, TABLE_MAGIC))
        throw new WireError("table", "not a chunk table")
    const count = readU32(bytes, 12)
    if (count < 1 || count > maxEntries || bytes.length !== CHUNK_HEAD_SIZE + count * 32)
        throw new WireError("table", "entry count does not match")
    return {
        sequence: readU32(bytes, 4),
        chunkSize: readU32(bytes, 8),
        hashes: bytes.slice(CHUNK_HEAD_SIZE, bytes.length),
    }
}

/** States a device reports on bulwark/<id>/ota/status. */
export type StatusState =
    | "idle"
    | "accepted"
    | "downloading"
    | "stalled"
    | "verifying"
    | "deferred"
    | "installing"
    | "trial"
    | "confirmed"
    | "refused"
    | "reverted"

/** A report as the agent makes it; the running version is added when it is sent. */
export interface StatusReport {
    state: StatusState
    /** Offer sequence the report concerns, when any. */
    seq?: number
    /** Offered version, when any. */
    version?: string
    /** The failed check of a refusal, the reason of a deferral or revert. */
    check?: string
    offset?: number
    size?: number
    /** Per-signature verdicts of an offer refused for a signature reason. */
    signatures?: SignatureReport[]
}

export interface AgentStatus extends StatusReport {
    /** Version that runs now. */
    running: string
}

export function encodeStatus(status: StatusReport, running: string): Buffer {
    const out: { [key: string]: any } = { v: 1, state: status.state, running: running }
    if (status.seq !== undefined) out["seq"] = status.seq
    if (status.version !== undefined) out["version"] = status.version
    if (status.check !== undefined) out["check"] = status.check
    if (status.offset !== undefined) out["offset"] = status.offset
    if (status.size !== undefined) out["size"] = status.size
    if (status.signatures !== undefined) {
        const list: { [key: string]: any }[] = []
        for (let i = 0; i < status.signatures.length; i++) {
            const r = status.signatures[i]
            list.push({ algorithm: r.algorithm, verdict: r.verdict, required: r.required })
        }
        out["signatures"] = list
    }
    return Buffer.from(JSON.stringify(out))
}

const STATES: string[] = [
    "idle",
    "accepted",
    "downloading",
    "stalled",
    "verifying",
    "deferred",
    "installing",
    "trial",
    "confirmed",
    "refused",
    "reverted",
]

const ALGORITHMS: string[] = ["ecdsa-p256-sha256", "ed25519", "slh-dsa-sha2-128s"]
const VERDICTS: string[] = ["passed", "failed", "unverifiable"]
/** Signatures a trailer can carry: one per algorithm. */
const MAX_REPORTED = 3

function decodeSignatures(raw: any): SignatureReport[] {
    if (!Array.isArray(raw) || raw.length > MAX_REPORTED)
        throw new WireError("status", "signatures")
    const list: SignatureReport[] = []
    for (let i = 0; i < raw.length; i++) {
        const r = raw[i]
        if (r === null || typeof r !== "object") throw new WireError("status", "signatures")
        const okAlgorithm = ALGORITHMS.indexOf(r["algorithm"]) >= 0
        const okVerdict = VERDICTS.indexOf(r["verdict"]) >= 0
        if (!okAlgorithm || !okVerdict || typeof r["required"] !== "boolean")
            throw new WireError("status", "signatures")
        list.push({ algorithm: r["algorithm"], verdict: r["verdict"], required: r["required"] })
    }
    return list
}

function shortText(value: unknown): boolean {
    return typeof value === "string" && value.length >= 1 && value.length <= 64
}

/** Decodes a status report (host side reads what devices send); WireError "status". */
export function decodeStatus(bytes: Buffer): AgentStatus {
    if (bytes.length > 1024) throw new WireError("status", "too long")
    let raw: any
    try {
        raw = JSON.parse(bytes.toString())
    } catch {
        throw new WireError("status", "not JSON")
    }
    if (raw === null || typeof raw !== "object" || raw["v"] !== 1)
        throw new WireError("status", "not a version 1 status")
    if (STATES.indexOf(raw["state"]) < 0 || !shortText(raw["running"]))
        throw new WireError("status", "state")
    const status: AgentStatus = { state: raw["state"], running: raw["running"] }
    if (raw["seq"] !== undefined) {
        if (!isUint(raw["seq"], 0xffffffff)) throw new WireError("status", "seq")
        status.seq = raw["seq"]
    }
    if (raw["version"] !== undefined) {
        if (!shortText(raw["version"])) throw new WireError("status", "version")
        status.version = raw["version"]
    }
    if (raw["check"] !== undefined) {
        if (!shortText(raw["check"])) throw new WireError("status", "check")
        status.check = raw["check"]
    }
    if (raw["offset"] !== undefined) {
        if (!isUint(raw["offset"], 0xffffffff)) throw new WireError("status", "offset")
        status.offset = raw["offset"]
    }
    if (raw["size"] !== undefined) {
        if (!isUint(raw["size"], 0xffffffff)) throw new WireError("status", "size")
        status.size = raw["size"]
    }
    if (raw["signatures"] !== undefined) status.signatures = decodeSignatures(raw["signatures"])
    return status
}
