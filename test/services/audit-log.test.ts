/**
 * The audit log on a simulated board (GP-TM-55): records survive reboots, the chain and
 * checkpoints verify offline with the device public key, keys evolve at each checkpoint,
 * full partitions recycle their oldest sector and say how many records were lost.
 */

import { afterAll, describe, expect, it } from "vitest"
import { SE_SLOT_AUDIT } from "../../hal/secure-element"
import { decodeFrame, KIND_CHECKPOINT, KIND_RECYCLE } from "../../src/audit/record"
import { cleanupTestBoards } from "../../sim/testing"
import { appendMany, exportAll, giveIdentity, openAudit, smallSectorBoard, verify } from "./support"

afterAll(() => cleanupTestBoards())

describe("audit log", () => {
    it("GP-TM-55: keeps records across a power cycle and a genuine export verifies", async () => {
        let board = await smallSectorBoard(4)
        const pub = await giveIdentity(board)
        let log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 10)

        board = await board.powerCycle()
        log = await openAudit(board, { epochRecords: 4 })
        await appendMany(log, 3, 10)
        const report = await verify(pub, await exportAll(board, log))

        expect(log.integrity().ok).toBe(true)
        expect(report.firstBad).toBeNull()
        expect(report.genuine).toBe(true)
        expect(report.records).toBe(log.headInfo()!.seq + 1)
        expect(report.checkpoints).toBeGreaterThanOrEqual(3)
        expect(report.proven).toBe(report.records)
    })

    it("GP-TM-55: evolves the MAC key at each checkpoint, so the old key is gone", async () => {
        const board = await smallSectorBoard(4)
        await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 3 })
        const probe = Buffer.from("probe")
        const before = await board.secureElement.hmac(SE_SLOT_AUDIT, probe)

        await appendMany(log, 3)
        const after = await board.secureElement.hmac(SE_SLOT_AUDIT, probe)

        expect(after.equals(before)).toBe(false)
        const frames: number[] = []
        await log.forEach(0, async (r) => {
            frames.push(r.kind)
        })
        expect(frames).toEqual([1, 1, 1, KIND_CHECKPOINT])
    })

    it(
        "GP-TM-55: recycles the oldest sector when full and records how many were lost",
        async () => {
            const board = await smallSectorBoard(3)
            const pub = await giveIdentity(board)
            const log = await openAudit(board, { epochRecords: 8 })

            await appendMany(log, 60)
            const kinds: { kind: number; detail: string; seq: number }[] = []
            await log.forEach(0, async (r) => {
                kinds.push({ kind: r.kind, detail: r.detail, seq: r.seq })
            })
            const report = await verify(pub, await exportAll(board, log))

            const recycles = kinds.filter((k) => k.kind === KIND_RECYCLE)
            expect(recycles.length).toBeGreaterThan(0)
            expect(kinds[0].seq).toBeGreaterThan(0)
            expect(recycles[recycles.length - 1].detail).toMatch(/^first=\d+ lost=\d+$/)
            expect(report.genuine).toBe(true)
            expect(report.lostBefore).toBeGreaterThan(0)
            expect(report.firstSeq).toBe(kinds[0].seq)
        }
    )

    it("reads its own frames back exactly", async () => {
        const board = await smallSectorBoard(3)
        const log = await openAudit(board)

        const seq = await log.append({
            event: "login",
            actor: "console",
            outcome: "failure",
            detail: "user=(unknown)\u0000\n",
        })
        const seen: string[] = []
        await log.forEach(seq, async (r) => {
            seen.push(`${r.event}/${r.actor}/${r.outcome}/${r.detail}`)
            expect(decodeFrame(r.frame).seq).toBe(seq)
        })

        expect(seen).toEqual(["login/console/failure/user=(unknown)??"])
    })
})
