/**
 * The console's persistent state on the "secure-settings" partition (docs/admin.md;
 * GP-TM-24, GP-TM-25): the owner password's salted hash, whether the setup code was used,
 * the failed-login counter and a pending factory reset. Two copies with sequence numbers
 * and a CRC, written alternately, so a power cut at any point keeps the old or the new one.
 */

import { readU16, readU32, writeU16, writeU32 } from "../../boot/bytes"
import { FlashPartition } from "../../hal/flash"
import {
    PASSWORD_RECORD_LENGTH,
    PasswordRecord,
    decodePasswordRecord,
    encodePasswordRecord,
} from "../credentials"
import { crc32 } from "../audit/record"
import { CheckError } from "../../hal/errors"

export const PARTITION_SECURE_SETTINGS = "secure-settings"

const MAGIC = "BWAD"
const VERSION = 1
const FLAG_OWNER = 1
const FLAG_SETUP_USED = 2
const FLAG_RESET_PENDING = 4
/** magic, version, flags, failures u16, seq u32, password record, crc32. */
const RECORD_LENGTH = 4 + 1 + 1 + 2 + 4 + PASSWORD_RECORD_LENGTH + 4

export interface AdminState {
    seq: number
    /** Failed logins since the last success; the console locks at the configured limit. */
    failures: number
    ownerPassword: PasswordRecord | null
    /** The setup code has served its one first login (reset by a factory reset). */
    setupUsed: boolean
    /** A factory reset was authorised and is not finished; it resumes at boot. */
    resetPending: boolean
}

/** "partition" (missing or too small). A damaged copy is never an error: the other wins. */
export class AdminStoreError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "AdminStoreError"
    }
}

export function freshState(): AdminState {
    return { seq: 0, failures: 0, ownerPassword: null, setupUsed: false, resetPending: false }
}

function encodeState(state: AdminState): Buffer {
    const out = Buffer.alloc(RECORD_LENGTH)
    const magic = Buffer.from(MAGIC)
    for (let i = 0; i < 4; i++) out[i] = magic[i]
    out[4] = VERSION
    let flags = 0
    if (state.ownerPassword) flags = flags | FLAG_OWNER
    if (state.setupUsed) flags = flags | FLAG_SETUP_USED
    if (state.resetPending) flags = flags | FLAG_RESET_PENDING
    out[5] = flags
    writeU16(out, 6, Math.min(state.failures, 0xffff))
    writeU32(out, 8, state.seq)
    if (state.ownerPassword) {
        const rec = encodePasswordRecord(state.ownerPassword)
        for (let i = 0; i < rec.length; i++) out[12 + i] = rec[i]
    }
    writeU32(out, RECORD_LENGTH - 4, crc32(out, 0, RECORD_LENGTH - 4))
    return out
}

/** A copy, or null when it is erased, torn or not ours. */
function decodeState(buf: Buffer): AdminState | null {
    if (buf.length < RECORD_LENGTH || buf.slice(0, 4).toString() !== MAGIC) return null
    if (buf[4] !== VERSION) return null
    if (crc32(buf, 0, RECORD_LENGTH - 4) !== readU32(buf, RECORD_LENGTH - 4)) return null
    const flags = buf[5]
    let owner: PasswordRecord | null = null
    if (flags & FLAG_OWNER) {
        try {
            owner = decodePasswordRecord(buf.slice(12, 12 + PASSWORD_RECORD_LENGTH))
        } catch (e) {
            return null
        }
    }
    return {
        seq: readU32(buf, 8),
        failures: readU16(buf, 6),
        ownerPassword: owner,
        setupUsed: (flags & FLAG_SETUP_USED) !== 0,
        resetPending: (flags & FLAG_RESET_PENDING) !== 0,
    }
}

export class AdminStore {
    private readonly half: number
    private current: AdminState = freshState()
    /** Which copy holds `current` (0 or 1), or -1 when neither is valid. */
    private slot = -1

    constructor(private readonly partition: FlashPartition) {
        const sectors = Math.floor(partition.size / partition.sectorSize)
        if (sectors < 2) throw new AdminStoreError("partition", "needs two sectors")
        this.half = Math.floor(sectors / 2) * partition.sectorSize
        if (this.half < RECORD_LENGTH) throw new AdminStoreError("partition", "too small")
    }

    /** Reads both copies and keeps the newest valid one (a fresh state when none is). */
    async load(): Promise<AdminState> {
        const a = decodeState(await this.partition.read(0, RECORD_LENGTH))
        const b = decodeState(await this.partition.read(this.half, RECORD_LENGTH))
        if (a === null && b === null) {
            this.current = freshState()
            this.slot = -1
        } else if (b === null || (a !== null && a.seq >= b.seq)) {
            this.current = a!
            this.slot = 0
        } else {
            this.current = b
            this.slot = 1
        }
        return this.state()
    }

    /** A copy of the state last loaded or saved. */
    state(): AdminState {
        const c = this.current
        return {
            seq: c.seq,
            failures: c.failures,
            ownerPassword: c.ownerPassword,
            setupUsed: c.setupUsed,
            resetPending: c.resetPending,
        }
    }

    /**
     * Writes `next` with the following sequence number into the copy that does not hold
     * the current state: erase, then program. Resolves once it is on flash.
     */
    async save(next: AdminState): Promise<void> {
        const target = this.slot === 0 ? 1 : 0
        const state: AdminState = {
            seq: this.current.seq + 1,
            failures: next.failures,
            ownerPassword: next.ownerPassword,
            setupUsed: next.setupUsed,
            resetPending: next.resetPending,
        }
        const bytes = encodeState(state)
        const align = this.partition.writeAlign
        const padded = Buffer.alloc(Math.ceil(bytes.length / align) * align)
        for (let i = 0; i < padded.length; i++) padded[i] = i < bytes.length ? bytes[i] : 0xff
        await this.partition.erase(target * this.half, this.half)
        await this.partition.program(target * this.half, padded)
        this.current = state
        this.slot = target
    }

    /**
     * Erases both copies: owner password, counters and flags are gone (factory reset).
     * The older copy goes first, so a cut leaves either the newest copy (a pending reset
     * resumes) or nothing (the reset is done), never the older state alone.
     */
    async wipe(): Promise<void> {
        const newest = this.slot === 1 ? 1 : 0
        const older = newest === 1 ? 0 : 1
        await this.partition.erase(older * this.half, this.half)
        await this.partition.erase(newest * this.half, this.half)
        this.current = freshState()
        this.slot = -1
    }
}
