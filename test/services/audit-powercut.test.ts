/**
 * Power cut at every flash operation of audit appends, with each tear mode (GP-TM-55):
 * after the reboot every record that was reported written is still there unless the
 * recycling policy stated it lost, the chain verifies, and the log carries on.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { KIND_RECYCLE, detailNumber } from "../../src/audit/record"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards } from "../../sim/testing"
import { exportAll, giveIdentity, openAudit, smallSectorBoard, verify } from "./support"

afterAll(() => cleanupTestBoards())

const RECORDS = 30
const EPOCH = 5

interface Written {
    seq: number
    detail: string
}

async function runWithCut(cutAfter: number, tear: TearMode) {
    let board = await smallSectorBoard(3)
    const pub = await giveIdentity(board)
    let log = await openAudit(board, { epochRecords: EPOCH })
    board.flash.armPowerCut(cutAfter, tear, 1000 + cutAfter)
    const written: Written[] = []
    let cut = false
    try {
        for (let i = 0; i < RECORDS; i++) {
            const detail = "n=" + i
            const entry = { event: "config", actor: "t", outcome: "success", detail }
            const seq = await log.append(entry)
            written.push({ seq, detail })
        }
    } catch (e) {
        if (!(e instanceof PowerLoss)) throw e
        cut = true
    }
    if (!cut) return { cut, problems: [] as string[] }

    board = await board.powerCycle()
    log = await openAudit(board, { epochRecords: EPOCH })
    await log.append({ event: "boot", actor: "t", outcome: "info", detail: "after cut" })
    const stored = new Map<number, string>()
    let statedFirst = 0
    await log.forEach(0, async (r) => {
        stored.set(r.seq, r.detail)
        if (r.kind === KIND_RECYCLE) statedFirst = detailNumber(r.detail, "first")
    })
    const first = log.firstSeq()
    const report = await verify(pub, await exportAll(board, log))

    const problems: string[] = []
    if (!log.integrity().ok) problems.push("integrity " + JSON.stringify(log.integrity()))
    if (!report.genuine) problems.push("export " + JSON.stringify(report.firstBad))
    if (first > 0 && statedFirst !== first)
        problems.push(`first ${first} but the log states ${statedFirst}`)
    for (const w of written) {
        if (w.seq < first) continue
        if (stored.get(w.seq) !== w.detail) problems.push(`lost seq ${w.seq}`)
    }
    return { cut, problems }
}

describe("audit appends under power cuts", () => {
    for (const tear of ["none", "prefix", "garbage"] as TearMode[]) {
        it(`GP-TM-55: survives a cut at every flash operation (tear ${tear})`, async () => {
            const failures: string[] = []
            let runs = 0
            for (let n = 0; ; n++) {
                const result = await runWithCut(n, tear)
                if (!result.cut) break
                runs++
                for (const p of result.problems) failures.push(`cut after ${n} ops: ${p}`)
            }

            expect(failures).toEqual([])
            expect(runs).toBeGreaterThan(RECORDS)
        })
    }
})
