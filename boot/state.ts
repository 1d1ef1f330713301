/**
 * The boot-state record (DESIGN.md section 6, step 1; GP-TM-16): which slot is the confirmed
 * image, which holds a pending update and how many trial attempts it has used. Kept
 * power-safe as two copies, one a sector, each with a sequence number and a SHA-256
 * checksum: a write always goes to the copy that is not the newest valid one, so a cut at
 * any point leaves the previous state readable. Layout in docs/boot.md.
 */

import { concatBytes, equalBytes, readU32, writeU32 } from "./bytes"
import { Crypto } from "../hal/crypto"
import { FlashPartition } from "../hal/flash"
import { CheckError } from "../hal/errors"

export type SlotName = "a" | "b"

/**
 * What last changed course, for the app to report (GP-TM-18, GP-TM-55): the stub (reverted,
 * fallback, pending-refused), a confirm, or a signed rescue of slot a (boot/rescue.ts). It
 * stays until the next boot-state write replaces it. "rescued" is information only: the
 * stub decides exactly as for "none".
 */
export type BootEvent =
    | "none"
    | "reverted"
    | "fallback"
    | "pending-refused"
    | "confirmed"
    | "rescued"

export interface BootState {
    /** Sequence number of the record; the higher valid copy wins. */
    seq: number
    /** The confirmed image's slot. */
    active: SlotName
    /** A slot holding an update that has not been confirmed yet, or null. */
    pending: SlotName | null
    /** Trial boots of the pending slot started so far. */
    attempts: number
    event: BootEvent
    /** Slot the event concerns, when any. */
    eventSlot: SlotName | null
}

export class BootStateError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "BootStateError"
    }
}

const MAGIC = "BWBS"
const RECORD_VERSION = 1
const BODY_SIZE = 16
export const BOOT_STATE_RECORD_SIZE = BODY_SIZE + 32
/**
 * The event byte is the index here: append only, so every stored record keeps its meaning.
 * "rescued" (5) needed no new record version: the layout is unchanged, and a decoder that
 * does not know an index refuses that copy (range check below), as for any damaged byte.
 */
const EVENTS: BootEvent[] = [
    "none",
    "reverted",
    "fallback",
    "pending-refused",
    "confirmed",
    "rescued",
]
const NO_SLOT = 0xff

/** The state of a board whose boot-state partition holds no valid copy: factory image in a. */
export function initialBootState(): BootState {
    return { seq: 0, active: "a", pending: null, attempts: 0, event: "none", eventSlot: null }
}

/** A slot as one record byte: 0 for a, 1 for b, 0xff for none (boot and OTA state). */
export function slotByte(slot: SlotName | null): number {
    if (slot === null) return NO_SLOT
    return slot === "a" ? 0 : 1
}

/** The slot of a record byte; undefined for a byte no slot encodes to (a damaged record). */
export function slotFromByte(value: number): SlotName | null | undefined {
    if (value === 0) return "a"
    if (value === 1) return "b"
    if (value === NO_SLOT) return null
    return undefined
}

export function encodeBootState(crypto: Crypto, state: BootState): Buffer {
    const body = Buffer.alloc(BODY_SIZE)
    const magic = Buffer.from(MAGIC)
    for (let i = 0; i < 4; i++) body[i] = magic[i]
    body[4] = RECORD_VERSION
    body[5] = slotByte(state.active)
    body[6] = slotByte(state.pending)
    body[7] = state.attempts
    writeU32(body, 8, state.seq)
    body[12] = EVENTS.indexOf(state.event)
    body[13] = slotByte(state.eventSlot)
    return concatBytes([body, crypto.sha256([body])])
}

/**
 * Decodes one copy. Returns null for anything that is not a complete, well-formed record
 * (erased, torn, garbage): such a copy is ignored, never repaired by guessing.
 */
export function decodeBootState(crypto: Crypto, bytes: Buffer): BootState | null {
    if (bytes.length < BOOT_STATE_RECORD_SIZE) return null
    const body = bytes.slice(0, BODY_SIZE)
    const sum = bytes.slice(BODY_SIZE, BOOT_STATE_RECORD_SIZE)
    if (!equalBytes(crypto.sha256([body]), sum)) return null
    if (body.slice(0, 4).toString() !== MAGIC || body[4] !== RECORD_VERSION) return null
    const active = slotFromByte(body[5])
    const pending = slotFromByte(body[6])
    const eventSlot = slotFromByte(body[13])
    if (active === undefined || active === null) return null
    if (pending === undefined || pending === active) return null
    if (eventSlot === undefined) return null
    if (body[12] >= EVENTS.length || body[14] !== 0 || body[15] !== 0) return null
    if (pending === null && body[7] !== 0) return null
    return {
        seq: readU32(body, 8),
        active: active,
        pending: pending,
        attempts: body[7],
        event: EVENTS[body[12]],
        eventSlot: eventSlot,
    }
}

export interface StoredBootState {
    state: BootState
    /** Index (0 or 1) of the copy the state came from, or -1 when neither was valid. */
    copy: number
}

function checkPartition(part: FlashPartition): void {
    if (part.size < 2 * part.sectorSize || part.sectorSize < BOOT_STATE_RECORD_SIZE)
        throw new BootStateError("partition", "boot-state partition needs two sectors")
}

/** Reads both copies and returns the newest valid one (the initial state when none is). */
export async function readBootState(crypto: Crypto, part: FlashPartition): Promise<StoredBootState> {
    checkPartition(part)
    let best: BootState | null = null
    let bestCopy = -1
    for (let copy = 0; copy < 2; copy++) {
        const bytes = await part.read(copy * part.sectorSize, BOOT_STATE_RECORD_SIZE)
        const state = decodeBootState(crypto, bytes)
        if (state !== null && (best === null || state.seq > best.seq)) {
            best = state
            bestCopy = copy
        }
    }
    if (best === null) return { state: initialBootState(), copy: -1 }
    return { state: best, copy: bestCopy }
}

/**
 * Writes `next` as the new state: erases the copy that does not hold `current` and programs
 * the record there with the next sequence number. Until the program completes, `current`
 * stays the newest valid copy, so a power cut at either step loses only the change.
 */
export async function writeBootState(
    crypto: Crypto,
    part: FlashPartition,
    current: StoredBootState,
    next: BootState
): Promise<StoredBootState> {
    checkPartition(part)
    const target = current.copy === 0 ? 1 : 0
    const state: BootState = {
        seq: current.state.seq + 1,
        active: next.active,
        pending: next.pending,
        attempts: next.attempts,
        event: next.event,
        eventSlot: next.eventSlot,
    }
    if (state.pending === state.active) throw new BootStateError("pending", "pending is active")
    if (state.attempts < 0 || state.attempts > 255) throw new BootStateError("attempts", "range")
    const record = encodeBootState(crypto, state)
    const padded = Buffer.alloc(Math.ceil(record.length / part.writeAlign) * part.writeAlign)
    for (let i = 0; i < padded.length; i++) padded[i] = i < record.length ? record[i] : 0xff
    await part.erase(target * part.sectorSize, part.sectorSize)
    await part.program(target * part.sectorSize, padded)
    return { state: state, copy: target }
}
