/**
 * The audit partition as a ring of sectors (docs/audit-log.md, "On flash"; GP-TM-55):
 * frames never cross a sector, appends go after the last programmed byte, and a scan
 * resynchronises after a torn frame, so a power cut costs at most the frame being written.
 * This module only finds and reads frames; the chain and its keys live in log.ts.
 */

import { alignUp, concatBytes } from "../../boot/bytes"
import { FlashPartition } from "../../hal/flash"
import { AuditRecord, MAX_FRAME, MIN_FRAME, decodeFrame, frameLengthAt } from "./record"

/** What a scan of one sector found. */
export interface SectorInfo {
    count: number
    firstSeq: number
    lastSeq: number
    /** Aligned end of the last valid frame (0 when none). */
    end: number
    /** Aligned end of the last programmed (non-0xFF) byte, torn frames included. */
    dirtyEnd: number
}

/** Offset of the first byte after the last non-0xFF byte, aligned up. */
export function dirtyEndOf(buf: Buffer, align: number): number {
    let last = buf.length - 1
    while (last >= 0 && buf[last] === 0xff) last--
    return alignUp(last + 1, align)
}

/**
 * Calls `visit` for each valid frame of a sector image, in order. A bad frame (torn,
 * garbage) is skipped by sliding one write unit at a time until a valid frame or the
 * programmed area ends. Returns the frames' extent.
 */
export async function scanSector(
    buf: Buffer,
    align: number,
    visit: ((record: AuditRecord, offset: number) => Promise<void>) | null
): Promise<SectorInfo> {
    const dirtyEnd = dirtyEndOf(buf, align)
    const info: SectorInfo = { count: 0, firstSeq: 0, lastSeq: 0, end: 0, dirtyEnd: dirtyEnd }
    let pos = 0
    while (pos + MIN_FRAME <= dirtyEnd) {
        const length = frameLengthAt(buf, pos)
        let record: AuditRecord | null = null
        if (length > 0) {
            try {
                record = decodeFrame(buf.slice(pos, pos + length))
            } catch (e) {
                record = null
            }
        }
        if (record === null) {
            pos += align
            continue
        }
        if (info.count === 0) info.firstSeq = record.seq
        info.lastSeq = record.seq
        info.count++
        if (visit !== null) await visit(record, pos)
        pos = alignUp(pos + length, align)
        info.end = pos
    }
    return info
}

/** Geometry of the ring, checked once when the log opens. */
export interface RingGeometry {
    sectors: number
    sectorSize: number
    align: number
    /** A frame is placed only if it fits before the sector end. */
    maxAligned: number
}

export function ringGeometry(partition: FlashPartition): RingGeometry | null {
    const sectors = Math.floor(partition.size / partition.sectorSize)
    const maxAligned = alignUp(MAX_FRAME, partition.writeAlign)
    if (sectors < 2 || partition.sectorSize < 2 * maxAligned) return null
    return {
        sectors: sectors,
        sectorSize: partition.sectorSize,
        align: partition.writeAlign,
        maxAligned: maxAligned,
    }
}

export function nextSector(geometry: RingGeometry, sector: number): number {
    return sector + 1 >= geometry.sectors ? 0 : sector + 1
}

export async function readSector(
    partition: FlashPartition,
    geometry: RingGeometry,
    sector: number
): Promise<Buffer> {
    return await partition.read(sector * geometry.sectorSize, geometry.sectorSize)
}

/** Pads a frame with 0xFF to the write unit (0xFF programs nothing on NOR flash). */
export function padFrame(frame: Buffer, align: number): Buffer {
    const padded = alignUp(frame.length, align)
    if (padded === frame.length) return frame
    const pad = Buffer.alloc(padded - frame.length)
    for (let i = 0; i < pad.length; i++) pad[i] = 0xff
    return concatBytes([frame, pad])
}

/** True when every byte of the sector image is erased. */
export function sectorErased(buf: Buffer): boolean {
    for (let i = 0; i < buf.length; i++) if (buf[i] !== 0xff) return false
    return true
}

/** Where the frames of the whole partition are, and the newest frame (the head). */
export interface RingScan {
    /** Per sector; null when nothing is programmed there. */
    infos: (SectorInfo | null)[]
    headSector: number
    head: AuditRecord | null
}

export async function scanRing(
    partition: FlashPartition,
    geometry: RingGeometry
): Promise<RingScan> {
    const scan: RingScan = { infos: [], headSector: 0, head: null }
    for (let s = 0; s < geometry.sectors; s++) {
        const buf = await readSector(partition, geometry, s)
        let top: AuditRecord | null = null
        const info = await scanSector(buf, geometry.align, async (record) => {
            if (top === null || record.seq > top.seq) top = record
        })
        const sectorTop = top as AuditRecord | null
        if (sectorTop !== null && (scan.head === null || sectorTop.seq > scan.head.seq)) {
            scan.head = sectorTop
            scan.headSector = s
        }
        scan.infos.push(info.count > 0 || info.dirtyEnd > 0 ? info : null)
    }
    return scan
}
