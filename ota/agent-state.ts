/**
 * The update agent's power-safe state on the "ota-state" partition (docs/update-format.md;
 * GP-TM-05, GP-TM-16, GP-TM-18): the highest offer sequence accepted (replay protection),
 * the update in flight, and a progress log of the slot sectors written. The record is kept
 * as two copies, one a sector, like the boot state; each copy's progress log follows it in
 * its sector, one small self-checking entry appended per finished slot sector.
 */

import {
    alignUp,
    concatBytes,
    equalBytes,
    isErased,
    readU16,
    readU32,
    writeU16,
    writeU32,
} from "../boot/bytes"
import { parseVersion } from "../boot/image-format"
import { SlotName, slotByte, slotFromByte } from "../boot/state"
import { Crypto } from "../hal/crypto"
import { FlashPartition } from "../hal/flash"
import { CheckError } from "../hal/errors"

export const PARTITION_OTA_STATE = "ota-state"

export type OtaPhase = "idle" | "downloading" | "installing"

export interface OtaState {
    phase: OtaPhase
    /** Highest offer sequence ever accepted; never goes down. */
    highestSequence: number
    /** The slot the update goes to, null when idle. */
    slot: SlotName | null
    /** Offer sequence of the update in flight (0 when idle). */
    sequence: number
    imageSize: number
    /** SHA-256 of the whole image (from the offer); zeros when idle. */
    imageDigest: Buffer
    /** SHA-256 of the accepted offer message, to recognise it when it comes again. */
    offerDigest: Buffer
    securityCounter: number
    version: string
    /** Slot sectors known complete when this record was written (the log adds to it). */
    sectorsDone: number
    /** Boot-state sequence number read just before the image was marked pending. */
    bootSeq: number
}

export interface StoredOtaState {
    state: OtaState
    /** Copy (0 or 1) the state came from; -1 when neither copy was valid. */
    copy: number
    /** Sequence number of that copy's record (0 when none). */
    seq: number
    /** Slot sectors complete: sectorsDone plus the valid log entries that follow on. */
    done: number
    /** Index of the next free log entry of this copy. */
    nextEntry: number
}

export class OtaStateError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "OtaStateError"
    }
}

const MAGIC = "BWOS"
const RECORD_VERSION = 1
const BODY_SIZE = 108
export const OTA_RECORD_SIZE = BODY_SIZE + 32
const PHASES: OtaPhase[] = ["idle", "downloading", "installing"]
const ENTRY_BYTES = 8

export function idleOtaState(highestSequence: number): OtaState {
    return {
        phase: "idle",
        highestSequence: highestSequence,
        slot: null,
        sequence: 0,
        imageSize: 0,
        imageDigest: Buffer.alloc(32),
        offerDigest: Buffer.alloc(32),
        securityCounter: 0,
        version: "0.0.0",
        sectorsDone: 0,
        bootSeq: 0,
    }
}

export function encodeOtaState(crypto: Crypto, state: OtaState, seq: number): Buffer {
    const v = parseVersion(state.version)
    const body = Buffer.alloc(BODY_SIZE)
    const magic = Buffer.from(MAGIC)
    for (let i = 0; i < 4; i++) body[i] = magic[i]
    body[4] = RECORD_VERSION
    body[5] = PHASES.indexOf(state.phase)
    body[6] = slotByte(state.slot)
    writeU32(body, 8, seq)
    writeU32(body, 12, state.highestSequence)
    writeU32(body, 16, state.sequence)
    writeU32(body, 20, state.imageSize)
    for (let i = 0; i < 32; i++) body[24 + i] = state.imageDigest[i]
    for (let i = 0; i < 32; i++) body[56 + i] = state.offerDigest[i]
    writeU32(body, 88, state.securityCounter)
    writeU16(body, 92, v.major)
    writeU16(body, 94, v.minor)
    writeU16(body, 96, v.patch)
    writeU32(body, 100, state.sectorsDone)
    writeU32(body, 104, state.bootSeq)
    return concatBytes([body, crypto.sha256([body])])
}

/** One copy's record, or null for anything not whole and well-formed (never guessed at). */
export function decodeOtaState(crypto: Crypto, bytes: Buffer): { state: OtaState; seq: number } | null {
    if (bytes.length < OTA_RECORD_SIZE) return null
    const body = bytes.slice(0, BODY_SIZE)
    if (!equalBytes(crypto.sha256([body]), bytes.slice(BODY_SIZE, OTA_RECORD_SIZE))) return null
    if (body.slice(0, 4).toString() !== MAGIC || body[4] !== RECORD_VERSION) return null
    if (body[5] >= PHASES.length || body[7] !== 0 || body[98] !== 0 || body[99] !== 0) return null
    const slot = slotFromByte(body[6])
    if (slot === undefined) return null
    const phase = PHASES[body[5]]
    if ((phase === "idle") !== (slot === null)) return null
    const state: OtaState = {
        phase: phase,
        highestSequence: readU32(body, 12),
        slot: slot,
        sequence: readU32(body, 16),
        imageSize: readU32(body, 20),
        imageDigest: body.slice(24, 56),
        offerDigest: body.slice(56, 88),
        securityCounter: readU32(body, 88),
        version: readU16(body, 92) + "." + readU16(body, 94) + "." + readU16(body, 96),
        sectorsDone: readU32(body, 100),
        bootSeq: readU32(body, 104),
    }
    return { state: state, seq: readU32(body, 8) }
}

function checkPartition(part: FlashPartition): void {
    if (part.size < 2 * part.sectorSize || part.sectorSize < 2 * OTA_RECORD_SIZE)
        throw new OtaStateError("partition", "ota-state partition needs two sectors")
}

function entrySize(part: FlashPartition): number {
    return alignUp(ENTRY_BYTES, part.writeAlign)
}

function logStart(part: FlashPartition): number {
    return alignUp(OTA_RECORD_SIZE, part.writeAlign)
}

/** Entries that fit in one copy's sector after its record. */
export function logCapacity(part: FlashPartition): number {
    return Math.floor((part.sectorSize - logStart(part)) / entrySize(part))
}

/**
 * A progress entry: sector index, its complement, and 4 bytes of SHA-256 over the offer
 * digest and the index. A torn entry (a prefix written, or bits cleared at random) fails
 * these checks, so it is skipped and the sector is written again.
 */
function encodeEntry(crypto: Crypto, state: OtaState, sector: number, size: number): Buffer {
    const entry = Buffer.alloc(size)
    for (let i = 0; i < size; i++) entry[i] = 0xff
    writeU16(entry, 0, sector)
    writeU16(entry, 2, 0xffff - sector)
    const check = entryCheck(crypto, state, sector)
    for (let i = 0; i < 4; i++) entry[4 + i] = check[i]
    return entry
}

function entryCheck(crypto: Crypto, state: OtaState, sector: number): Buffer {
    const index = Buffer.alloc(2)
    writeU16(index, 0, sector)
    return crypto.sha256([state.offerDigest, index]).slice(0, 4)
}

function entrySector(crypto: Crypto, state: OtaState, entry: Buffer): number {
    const sector = readU16(entry, 0)
    if (readU16(entry, 2) !== 0xffff - sector) return -1
    if (!equalBytes(entry.slice(4, 8), entryCheck(crypto, state, sector))) return -1
    return sector
}

/** Reads both copies, takes the newest valid one and replays its progress log. */
export async function readOtaState(crypto: Crypto, part: FlashPartition): Promise<StoredOtaState> {
    checkPartition(part)
    let best: OtaState | null = null
    let bestSeq = -1
    let bestCopy = -1
    for (let copy = 0; copy < 2; copy++) {
        const bytes = await part.read(copy * part.sectorSize, OTA_RECORD_SIZE)
        const decoded = decodeOtaState(crypto, bytes)
        if (decoded !== null && decoded.seq > bestSeq) {
            best = decoded.state
            bestSeq = decoded.seq
            bestCopy = copy
        }
    }
    if (best === null) return { state: idleOtaState(0), copy: -1, seq: 0, done: 0, nextEntry: 0 }
    if (best.phase === "idle")
        return { state: best, copy: bestCopy, seq: bestSeq, done: 0, nextEntry: 0 }

    const size = entrySize(part)
    const base = bestCopy * part.sectorSize + logStart(part)
    const capacity = logCapacity(part)
    const log = await part.read(base, capacity * size)
    let done = best.sectorsDone
    let next = 0
    while (next < capacity) {
        const entry = log.slice(next * size, next * size + size)
        if (isErased(entry)) break
        if (entrySector(crypto, best, entry) === done) done = done + 1
        next = next + 1
    }
    return { state: best, copy: bestCopy, seq: bestSeq, done: done, nextEntry: next }
}

/**
 * Writes `next` as the new state into the copy that does not hold the current one (erase,
 * then program); until the program completes the current copy stays the newest valid one.
 * The new copy starts with an empty progress log.
 */
export async function writeOtaState(
    crypto: Crypto,
    part: FlashPartition,
    current: StoredOtaState,
    next: OtaState
): Promise<StoredOtaState> {
    checkPartition(part)
    if (next.highestSequence < current.state.highestSequence)
        throw new OtaStateError("sequence", "the stored offer sequence never goes down")
    const target = current.copy === 0 ? 1 : 0
    const seq = current.seq + 1
    const record = encodeOtaState(crypto, next, seq)
    const padded = Buffer.alloc(alignUp(record.length, part.writeAlign))
    for (let i = 0; i < padded.length; i++) padded[i] = i < record.length ? record[i] : 0xff
    await part.erase(target * part.sectorSize, part.sectorSize)
    await part.program(target * part.sectorSize, padded)
    return { state: next, copy: target, seq: seq, done: next.sectorsDone, nextEntry: 0 }
}

/**
 * Records slot sector `stored.done` as complete: one entry appended to the current copy's
 * log, or, when the log is full, a fresh copy carrying the count.
 */
export async function appendProgress(
    crypto: Crypto,
    part: FlashPartition,
    stored: StoredOtaState
): Promise<StoredOtaState> {
    if (stored.copy < 0 || stored.state.phase !== "downloading")
        throw new OtaStateError("phase", "no download in flight")
    if (stored.nextEntry >= logCapacity(part)) {
        const carried: OtaState = {
            phase: stored.state.phase,
            highestSequence: stored.state.highestSequence,
            slot: stored.state.slot,
            sequence: stored.state.sequence,
            imageSize: stored.state.imageSize,
            imageDigest: stored.state.imageDigest,
            offerDigest: stored.state.offerDigest,
            securityCounter: stored.state.securityCounter,
            version: stored.state.version,
            sectorsDone: stored.done + 1,
            bootSeq: stored.state.bootSeq,
        }
        return await writeOtaState(crypto, part, stored, carried)
    }
    const size = entrySize(part)
    const offset = stored.copy * part.sectorSize + logStart(part) + stored.nextEntry * size
    await part.program(offset, encodeEntry(crypto, stored.state, stored.done, size))
    return {
        state: stored.state,
        copy: stored.copy,
        seq: stored.seq,
        done: stored.done + 1,
        nextEntry: stored.nextEntry + 1,
    }
}
