/**
 * GP-TM-55 attack suite: an export altered, cut, reordered, padded with forged records or
 * re-chained by someone who recomputes every hash is never taken for genuine, and the
 * offline verifier names the first bad record. Any single changed byte is caught.
 */

import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { crc32, decodeFrame } from "../../src/audit/record"
import { decodeHeader, exportEntry, splitEntries } from "../../src/audit/export"
import { cleanupTestBoards } from "../../sim/testing"
import {
    appendMany,
    exportAll,
    giveIdentity,
    hostCrypto,
    openAudit,
    smallSectorBoard,
    verify,
} from "./support"

afterAll(() => cleanupTestBoards())

let pub: Buffer
let genuine: Buffer
let header: Buffer
let frames: Buffer[]

beforeAll(async () => {
    const board = await smallSectorBoard(8)
    pub = await giveIdentity(board)
    const log = await openAudit(board, { epochRecords: 6 })
    await appendMany(log, 24)
    genuine = await exportAll(board, log)
    const parsed = decodeHeader(genuine)
    header = genuine.subarray(0, parsed.next)
    frames = splitEntries(genuine, parsed.next).frames
})

function rebuild(list: Buffer[], head = header): Buffer {
    return Buffer.concat([head, ...list.map((f) => exportEntry(f))])
}

/** Changes one detail character and recomputes the CRC, as a careful forger would. */
function alterDetail(frame: Buffer): Buffer {
    const out = Buffer.from(frame)
    const r = decodeFrame(frame)
    const at = r.body.length - 1
    out[at] = out[at] === 0x31 ? 0x32 : 0x31
    out.writeUInt32BE(crc32(out, 0, out.length - 4), out.length - 4)
    return out
}

describe("GP-TM-55: offline verification of an export", () => {
    it("GP-TM-55: a genuine export verifies, every record proven by a signature", async () => {
        const report = await verify(pub, genuine)

        expect(report.genuine).toBe(true)
        expect(report.proven).toBe(frames.length)
        expect(report.checkpoints).toBeGreaterThanOrEqual(4)
    })

    it("GP-TM-55: names each altered record, CRC fixed or not", async () => {
        for (let k = 0; k < frames.length; k++) {
            const careful = frames.slice()
            careful[k] = alterDetail(frames[k])
            const sloppy = frames.slice()
            sloppy[k] = Buffer.from(frames[k]) as Buffer
            sloppy[k][30] ^= 0x40

            const a = await verify(pub, rebuild(careful))
            const b = await verify(pub, rebuild(sloppy))

            expect(a.genuine).toBe(false)
            expect(a.firstBad).toMatchObject({ index: k, seq: k, problem: "altered" })
            expect(b.firstBad).toMatchObject({ index: k, seq: k, problem: "altered" })
        }
    })

    it("GP-TM-55: names each removed record, the first and the last included", async () => {
        for (let k = 0; k < frames.length; k++) {
            const list = frames.filter((_, i) => i !== k)

            const report = await verify(pub, rebuild(list))

            expect(report.genuine).toBe(false)
            expect(report.firstBad).toMatchObject({ seq: k, problem: "removed" })
        }
    })

    it("GP-TM-55: names the first record of a reordered pair", async () => {
        for (let k = 0; k + 1 < frames.length; k++) {
            const list = frames.slice()
            list[k] = frames[k + 1]
            list[k + 1] = frames[k]

            const report = await verify(pub, rebuild(list))

            expect(report.firstBad).toMatchObject({ index: k, seq: k, problem: "reordered" })
        }
    })

    it("GP-TM-55: detects truncation by records and by bytes", async () => {
        const n = frames.length
        const shortByThree = await verify(pub, rebuild(frames.slice(0, n - 3)))
        const cutMidRecord = await verify(pub, genuine.subarray(0, genuine.length - 10))
        const headerOnly = await verify(pub, header)

        expect(shortByThree.firstBad).toMatchObject({ seq: n - 3, problem: "removed" })
        expect(cutMidRecord.firstBad).toMatchObject({ index: n - 1, problem: "removed" })
        expect(headerOnly.firstBad).toMatchObject({ seq: 0, problem: "removed" })
    })

    it(
        "GP-TM-55: a forged record slipped in with a valid CRC and link is named forged",
        async () => {
            const k = 10
            const forged = alterDetail(frames[k])
            const list = [...frames.slice(0, k), forged, ...frames.slice(k)]

            const report = await verify(pub, rebuild(list))

            expect(report.firstBad).toMatchObject({ index: k, seq: k, problem: "forged" })
        }
    )

    it(
        "GP-TM-55: a forger who recomputes every later hash is stopped by the signatures",
        async () => {
            const k = 8
            const list: Buffer[] = frames.map((f) => Buffer.from(f))
            list[k] = alterDetail(list[k])
            for (let i = k + 1; i < list.length; i++) {
                const prev = hostCrypto.sha256([list[i - 1]])
                prev.copy(list[i], 22)
                list[i].writeUInt32BE(crc32(list[i], 0, list[i].length - 4), list[i].length - 4)
            }

            const report = await verify(pub, rebuild(list))

            expect(report.genuine).toBe(false)
            expect(report.firstBad!.seq).toBeGreaterThanOrEqual(k)
            expect(report.unprovenFrom).toBeGreaterThanOrEqual(0)
            expect(report.unprovenFrom).toBeLessThanOrEqual(k)
        }
    )

    it(
        "GP-TM-55: refuses an export whose header was changed or made by another device",
        async () => {
            const head = Buffer.from(header)
            head[head.length - 70] ^= 1
            const other = Buffer.from(pub)
            other[10] ^= 1

            const changed = await verify(pub, rebuild(frames, head))
            const wrongKey = await verify(other, genuine)
            const garbage = await verify(pub, Buffer.from("not an export"))

            expect(changed.firstBad).toMatchObject({ index: -1, problem: "forged" })
            expect(wrongKey.firstBad).toMatchObject({ index: -1, problem: "forged" })
            expect(garbage.firstBad).toMatchObject({ index: -1, problem: "malformed" })
        }
    )

    it("GP-TM-55: any single changed byte makes the export not genuine (property)", async () => {
        await fc.assert(
            fc.asyncProperty(
                fc.nat({ max: genuine.length - 1 }),
                fc.integer({ min: 1, max: 255 }),
                async (at, xor) => {
                    const bytes = Buffer.from(genuine)
                    bytes[at] ^= xor
                    const report = await verify(pub, bytes)
                    expect(report.genuine).toBe(false)
                    expect(report.firstBad).not.toBeNull()
                }
            ),
            { numRuns: 300 }
        )
    })
})
