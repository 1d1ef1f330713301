/**
 * Audit exports are consistent snapshots (docs/audit-log.md, "Export"; GP-TM-55): records
 * appended while an export streams, even enough of them to recycle the sectors it is
 * reading, do not break the export's verification; they are left for the next export.
 */

import { afterAll, describe, expect, it } from "vitest"
import { writeExport } from "../../src/audit/export"
import { decodeFrame } from "../../src/audit/record"
import { splitEntries, decodeHeader } from "../../src/audit/export"
import { cleanupTestBoards } from "../../sim/testing"
import { appendMany, exportContext, giveIdentity, openAudit, smallSectorBoard, verify } from "./support"

afterAll(cleanupTestBoards)

describe("audit export snapshot", () => {
    it("GP-TM-55: records appended while an export streams leave it verifying", async () => {
        const board = await smallSectorBoard(4)
        const pub = await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 6)
        const pieces: Buffer[] = []
        const header = await writeExport(exportContext(board, log), Buffer.alloc(16, 1), 0,
            async (piece) => {
                pieces.push(piece)
                // Another fiber's audit record lands between every piece.
                await appendMany(log, 1, 100 + pieces.length)
            })
        const report = await verify(pub, Buffer.concat(pieces))
        expect(report.genuine).toBe(true)
        expect(report.records).toBe(header.count)
        expect(report.headSeq).toBe(header.headSeq)
        expect(log.headInfo()!.seq).toBeGreaterThan(header.headSeq)

        // The next export has them, and verifies too.
        const next: Buffer[] = []
        await writeExport(exportContext(board, log), Buffer.alloc(16, 2), 0, async (p) => {
            next.push(p)
        })
        const again = await verify(pub, Buffer.concat(next))
        expect(again.genuine).toBe(true)
        expect(again.headSeq).toBe(log.headInfo()!.seq)
    })

    it("GP-TM-55: an export started alongside concurrent appends verifies", async () => {
        const board = await smallSectorBoard(4)
        const pub = await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 5)
        const pieces: Buffer[] = []
        const running = writeExport(exportContext(board, log), Buffer.alloc(16, 3), 0,
            async (p) => {
                pieces.push(p)
            })
        const appending = appendMany(log, 8, 50)
        await running
        await appending
        const report = await verify(pub, Buffer.concat(pieces))
        expect(report.genuine).toBe(true)
    })

    it("GP-TM-55: the ring recycling the sectors being exported does not cut the export", async () => {
        // 3 sectors of 1 KiB: the ring is full after ~20 records; 40 more appended during
        // the export erase every sector the export had not read yet.
        const board = await smallSectorBoard(3)
        const pub = await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 30)
        const pieces: Buffer[] = []
        const header = await writeExport(exportContext(board, log), Buffer.alloc(16, 4), 0,
            async (p) => {
                pieces.push(p)
                if (pieces.length === 1) await appendMany(log, 40, 200)
            })
        expect(log.firstSeq()).toBeGreaterThan(header.headSeq)
        const bytes = Buffer.concat(pieces)
        const report = await verify(pub, bytes)
        expect(report.genuine).toBe(true)
        expect(report.records).toBe(header.count)
        const parsed = decodeHeader(bytes)
        const frames = splitEntries(bytes, parsed.next).frames.map((f) => decodeFrame(f).seq)
        expect(frames[0]).toBe(header.firstSeq)
        expect(frames[frames.length - 1]).toBe(header.headSeq)
    })

    it("GP-TM-55: a snapshot released by its export keeps no sector copies", async () => {
        const board = await smallSectorBoard(3)
        await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 25)
        const snap = log.snapshot(0)
        log.release(snap)
        await appendMany(log, 30, 100)
        // Released: the recycled sectors were not copied, so its range reads short.
        let seen = 0
        await snap.forEach(async () => {
            seen++
        })
        expect(seen).toBeLessThan(snap.lastSeq() - snap.first + 1)
    })
})
