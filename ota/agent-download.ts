/**
 * The download half of the update agent (GP-TM-16, GP-TM-18): requests chunks of the
 * offered image, writes them in order into the inactive slot (each sector erased just before
 * its first write) and appends one progress entry per finished sector to "ota-state", so a
 * reboot resumes at the first sector not known to be whole. Lost requests are sent again
 * after a timeout that backs off while the publisher is silent. With a chunk table (offer
 * format 2) every chunk is checked against its signed hash on arrival: a changed chunk is
 * asked for again, up to CHUNK_RETRIES times, and never written.
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
    encodeRequest,
    encodeTableRequest,
    StatusReport,
    TOPIC_REQUEST,
} from "./agent-wire"
import { chunkCount, ChunkTableRef, MAX_TABLE_ENTRIES } from "./offer"

export interface DownloadOptions {
    chunkSize: number
    /** Requests kept in flight. */
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
    /** The verified chunk table; null until it arrives, or when the offer has none. */
    private hashes: Buffer | null = null
    private badInARow = 0

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
        this.requestedTo = this.nextOffset
        await this.fill()
        return ""
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
        if (chunk.sequence !== state.sequence || chunk.offset !== this.nextOffset) return ""
        const expected = this.lengthAt(this.nextOffset)
        if (chunk.data.length === 0 || chunk.data.length < expected) return "truncated"
        if (chunk.data.length > expected) return "chunk-size"
        if (!this.chunkMatches(chunk.data)) return await this.bad("chunk-digest")
        this.badInARow = 0

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
        this.requestedTo = this.nextOffset
        this.lastProgressMs = now
        await this.fill()
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

    private async fill(): Promise<void> {
        if (this.needsTable()) {
            const request = encodeTableRequest(this.stored.state.sequence)
            await this.options.io.publish(TOPIC_REQUEST, request, false)
            return
        }
        const size = this.stored.state.imageSize
        const limit = this.nextOffset + this.options.window * this.chunkSize
        if (this.requestedTo < this.nextOffset) this.requestedTo = this.nextOffset
        while (this.requestedTo < size && this.requestedTo < limit) {
            const length = this.lengthAt(this.requestedTo)
            const request = encodeRequest({
                sequence: this.stored.state.sequence,
                offset: this.requestedTo,
                length: length,
            })
            this.requestedTo = this.requestedTo + length
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
