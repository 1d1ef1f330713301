/**
 * The download half of the update agent (GP-TM-16, GP-TM-18): requests chunks of the
 * offered image, writes them in order into the inactive slot (each sector erased just before
 * its first write) and appends one progress entry per finished sector to "ota-state", so a
 * reboot resumes at the first sector not known to be whole. The window's missing chunks are
 * asked for with range requests, one publish per refill of at least half the window (each
 * publish costs a GP-TM-46 "publishes" token). Lost requests are sent again after a timeout
 * that backs off while the publisher is silent, or at once when a chunk past a gap arrives. With a chunk table (offer format 2) every
 * chunk is checked against its signed hash on arrival: a changed chunk is asked for again,
 * up to CHUNK_RETRIES times, and never written.
 */

import { alignUp, equalBytes } from "../boot/bytes"
import { Board } from "../hal/board"
import { FlashPartition } from "../hal/flash"
import { appendProgress, StoredOtaState } from "./agent-state"
import {
    Chunk,
    ChunkTable,
    decodeChunk,
    decodeTable,
    encodeRangeRequest,
    encodeTableRequest,
    MAX_RANGE_BYTES,
    MAX_RANGE_CHUNKS,
    StatusReport,
    TOPIC_REQUEST,
} from "./agent-wire"
import { chunkCount, ChunkTableRef, MAX_TABLE_ENTRIES } from "./offer"

export interface DownloadOptions {
    chunkSize: number
    /** Chunks kept in flight (asked for and not yet written). */
    window: number
    io: { publish(suffix: string, payload: Buffer, reliable: boolean): Promise<void> }
    report: (status: StatusReport) => Promise<void>
    /** The offer's chunk table reference; null: no per-chunk check (chunkSize applies). */
    table: ChunkTableRef | null
}

/** Bad arrivals in a row (a changed chunk, a table that does not match) before refusing. */
export const CHUNK_RETRIES = 3

/** First wait for a chunk before asking again; doubled per silent period up to the cap. */
export const REQUEST_TIMEOUT_MS = 2000
export const REQUEST_TIMEOUT_MAX_MS = 60000
/** Silent periods in a row before the device reports the download as stalled. */
export const STALL_AFTER = 3

/**
 * `accept` answers: "" (not for us, a duplicate or out of order: ignored), "progress",
 * "complete", or the name of a failed check ("truncated", "chunk-size", "chunk-digest",
 * "chunk-table").
 */
export type ChunkOutcome = string

export class Downloader {
    stored: StoredOtaState
    nextOffset: number
    private readonly board: Board
    private readonly statePart: FlashPartition
    private readonly slot: FlashPartition
    private readonly options: DownloadOptions
    private erasedTo: number
    private requestedTo: number
    private lastProgressMs: number
    private timeoutMs = REQUEST_TIMEOUT_MS
    private silentPeriods = 0
    private lastDecile = -1
    private readonly chunkSize: number
    /** Most chunks one range request asks for (MAX_RANGE_CHUNKS, MAX_RANGE_BYTES). */
    private readonly perRequest: number
    /** Free window slots, in chunks, before a refill is sent: half the window. */
    private readonly refillAt: number
    /** The verified chunk table; null until it arrives, or when the offer has none. */
    private hashes: Buffer | null = null
    private badInARow = 0
    /** The window was asked for again from nextOffset and nothing was written since. */
    private resending = false

    constructor(
        board: Board,
        statePart: FlashPartition,
        slot: FlashPartition,
        stored: StoredOtaState,
        options: DownloadOptions
    ) {
        this.board = board
        this.statePart = statePart
        this.slot = slot
        this.stored = stored
        this.options = options
        this.chunkSize = options.table === null ? options.chunkSize : options.table.chunkSize
        const byBytes = Math.floor(MAX_RANGE_BYTES / this.chunkSize)
        const most = byBytes < MAX_RANGE_CHUNKS ? byBytes : MAX_RANGE_CHUNKS
        this.perRequest = most < 1 ? 1 : most
        const half = Math.floor((options.window + 1) / 2)
        this.refillAt = half < 1 ? 1 : half
        const resumeAt = stored.done * slot.sectorSize
        const size = stored.state.imageSize
        this.nextOffset = resumeAt < size ? resumeAt : size
        // The sector at the resume point may hold a torn write: it is erased again first.
        this.erasedTo = this.nextOffset
        this.requestedTo = this.nextOffset
        this.lastProgressMs = board.clock.monotonicMs()
    }

    complete(): boolean {
        return this.nextOffset >= this.stored.state.imageSize
    }

    /** (Re)sends the requests of the window from the first byte still missing. */
    async kick(): Promise<void> {
        this.requestedTo = this.nextOffset
        this.resending = true
        this.lastProgressMs = this.board.clock.monotonicMs()
        await this.report("downloading")
        await this.fill()
    }

    private needsTable(): boolean {
        return this.options.table !== null && this.hashes === null
    }

    /** A bad arrival: the failed check once the retries are used up, else ask again. */
    private async bad(check: string): Promise<ChunkOutcome> {
        this.badInARow = this.badInARow + 1
        if (this.badInARow > CHUNK_RETRIES) return check
        await this.resend()
        return ""
    }

    /** Asks for the whole window again, from the first byte still missing. */
    private async resend(): Promise<void> {
        this.requestedTo = this.nextOffset
        this.resending = true
        await this.fill()
    }

    /** The table must be for this offer and hash to the digest the offer signs. */
    private async acceptTable(bytes: Buffer): Promise<ChunkOutcome> {
        const ref = this.options.table
        if (ref === null) return ""
        let table: ChunkTable
        try {
            table = decodeTable(bytes, MAX_TABLE_ENTRIES)
        } catch (err) {
            return ""
        }
        const state = this.stored.state
        if (table.sequence !== state.sequence) return ""
        const count = chunkCount(state.imageSize, ref.chunkSize)
        const digest = this.board.crypto.sha256([table.hashes])
        const fits = table.chunkSize === ref.chunkSize && table.hashes.length === count * 32
        if (!fits || !equalBytes(digest, ref.digest)) return await this.bad("chunk-table")
        this.hashes = table.hashes
        this.badInARow = 0
        await this.fill()
        return "progress"
    }

    private chunkMatches(data: Buffer): boolean {
        const hashes = this.hashes
        if (hashes === null) return true
        const at = Math.floor(this.nextOffset / this.chunkSize) * 32
        return equalBytes(this.board.crypto.sha256([data]), hashes.slice(at, at + 32))
    }

    async accept(bytes: Buffer): Promise<ChunkOutcome> {
        if (this.needsTable()) return await this.acceptTable(bytes)
        let chunk: Chunk
        try {
            chunk = decodeChunk(bytes)
        } catch (err) {
            return ""
        }
        const state = this.stored.state
        if (chunk.sequence !== state.sequence) return ""
        if (chunk.offset !== this.nextOffset) {
            // Chunks come in order: one asked for and answered past the next byte means the
            // chunks before it (or their request) were lost. Asked again once, not per chunk.
            const lost = chunk.offset > this.nextOffset && chunk.offset < this.requestedTo
            if (lost && !this.resending) await this.resend()
            return ""
        }
        const expected = this.lengthAt(this.nextOffset)
        if (chunk.data.length === 0 || chunk.data.length < expected) return "truncated"
        if (chunk.data.length > expected) return "chunk-size"
        if (!this.chunkMatches(chunk.data)) return await this.bad("chunk-digest")
        this.badInARow = 0
        this.resending = false

        await this.eraseUpTo(this.nextOffset + expected)
        await this.slot.program(this.nextOffset, this.aligned(chunk.data))
        this.nextOffset = this.nextOffset + expected
        await this.recordSectors()

        this.lastProgressMs = this.board.clock.monotonicMs()
        this.timeoutMs = REQUEST_TIMEOUT_MS
        this.silentPeriods = 0
        if (this.complete()) return "complete"
        const decile = Math.floor((this.nextOffset * 10) / state.imageSize)
        if (decile > this.lastDecile) await this.report("downloading")
        await this.fill()
        return "progress"
    }

    /** Asks again when nothing came for a while; reports a stall once per silence. */
    async tick(): Promise<void> {
        if (this.complete()) return
        const now = this.board.clock.monotonicMs()
        if (now - this.lastProgressMs < this.timeoutMs) return
        this.silentPeriods = this.silentPeriods + 1
        this.timeoutMs = this.timeoutMs * 2
        if (this.timeoutMs > REQUEST_TIMEOUT_MAX_MS) this.timeoutMs = REQUEST_TIMEOUT_MAX_MS
        if (this.silentPeriods === STALL_AFTER) await this.report("stalled")
        this.lastProgressMs = now
        await this.resend()
    }

    /** The last chunk of an image may end off the write unit: padded with erased bytes. */
    private aligned(data: Buffer): Buffer {
        const size = alignUp(data.length, this.slot.writeAlign)
        if (size === data.length) return data
        const padded = Buffer.alloc(size)
        for (let i = 0; i < size; i++) padded[i] = i < data.length ? data[i] : 0xff
        return padded
    }

    private lengthAt(offset: number): number {
        const left = this.stored.state.imageSize - offset
        return left < this.chunkSize ? left : this.chunkSize
    }

    /** Chunks asked for and not yet written: from the next byte to the requested end. */
    private inFlight(): number {
        return Math.ceil((this.requestedTo - this.nextOffset) / this.chunkSize)
    }

    /**
     * Asks for the window's missing chunks once at least half of it is free (or nothing is
     * in flight), in as few range requests as MAX_RANGE_CHUNKS and MAX_RANGE_BYTES allow.
     */
    private async fill(): Promise<void> {
        if (this.needsTable()) {
            const request = encodeTableRequest(this.stored.state.sequence)
            await this.options.io.publish(TOPIC_REQUEST, request, false)
            return
        }
        const size = this.stored.state.imageSize
        if (this.requestedTo < this.nextOffset) this.requestedTo = this.nextOffset
        const pending = this.inFlight()
        if (pending > 0 && this.options.window - pending < this.refillAt) return
        let free = this.options.window - pending
        while (this.requestedTo < size && free > 0) {
            const left = Math.ceil((size - this.requestedTo) / this.chunkSize)
            let count = free < this.perRequest ? free : this.perRequest
            if (left < count) count = left
            const request = encodeRangeRequest({
                sequence: this.stored.state.sequence,
                offset: this.requestedTo,
                chunkSize: this.chunkSize,
                count: count,
            })
            const end = this.requestedTo + count * this.chunkSize
            this.requestedTo = end < size ? end : size
            free = free - count
            await this.options.io.publish(TOPIC_REQUEST, request, false)
        }
    }

    private async eraseUpTo(end: number): Promise<void> {
        while (this.erasedTo < end) {
            await this.slot.erase(this.erasedTo, this.slot.sectorSize)
            this.erasedTo = this.erasedTo + this.slot.sectorSize
        }
    }

    /** Appends a progress entry for every slot sector the last write completed. */
    private async recordSectors(): Promise<void> {
        const sector = this.slot.sectorSize
        const size = this.stored.state.imageSize
        for (;;) {
            const start = this.stored.done * sector
            if (start >= size) return
            const end = start + sector < size ? start + sector : size
            if (end > this.nextOffset) return
            this.stored = await appendProgress(this.board.crypto, this.statePart, this.stored)
        }
    }

    private async report(state: "downloading" | "stalled"): Promise<void> {
        const s = this.stored.state
        this.lastDecile = Math.floor((this.nextOffset * 10) / s.imageSize)
        await this.options.report({
            state: state,
            seq: s.sequence,
            version: s.version,
            offset: this.nextOffset,
            size: s.imageSize,
        })
    }
}
