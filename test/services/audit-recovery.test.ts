/**
 * How the audit log recovers and what it notices about itself (GP-TM-55): a cut between a
 * checkpoint and the key evolution is finished at boot; a lost audit key is recorded and
 * the chain goes on; a record rewritten on flash by someone without the audit key is
 * caught by the device's MAC check and shows up in the next export as device-detected.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { SE_SLOT_AUDIT } from "../../hal/secure-element"
import { AuditLog } from "../../src/audit/log"
import { crc32, decodeFrame } from "../../src/audit/record"
import { cleanupTestBoards } from "../../sim/testing"
import { appendMany, exportAll, giveIdentity, openAudit, smallSectorBoard, verify } from "./support"

afterAll(() => cleanupTestBoards())

describe("audit log recovery", () => {
    it("GP-TM-55: finishes a key evolution that a power cut interrupted", async () => {
        let board = await smallSectorBoard(4)
        const pub = await giveIdentity(board)
        const se = board.secureElement
        const probe = Buffer.from("probe")
        // The secure element loses power right after the checkpoint reached flash.
        const cutSe = new Proxy(se, {
            get(target, name) {
                if (name === "evolveSecret")
                    return async () => {
                        throw new PowerLoss("cut before the evolution")
                    }
                const value = Reflect.get(target, name)
                return typeof value === "function" ? value.bind(target) : value
            },
        })
        const log = await AuditLog.open(
            {
                partition: board.flash.partition("audit"),
                secureElement: cutSe,
                crypto: board.crypto,
                clock: board.clock,
            },
            { epochRecords: 3 }
        )
        await expect(appendMany(log, 3)).rejects.toThrow(PowerLoss)
        const keyAtCut = await se.hmac(SE_SLOT_AUDIT, probe)

        board = await board.powerCycle()
        const reopened = await openAudit(board, { epochRecords: 3 })
        const keyAfter = await board.secureElement.hmac(SE_SLOT_AUDIT, probe)
        await appendMany(reopened, 2)
        board = await board.powerCycle()
        const third = await openAudit(board, { epochRecords: 3 })
        const report = await verify(pub, await exportAll(board, third))

        expect(keyAfter.equals(keyAtCut)).toBe(false)
        expect(third.integrity().ok).toBe(true)
        expect(report.genuine).toBe(true)
    })

    it("GP-TM-55: records a lost audit key and keeps a verifiable chain", async () => {
        let board = await smallSectorBoard(4)
        const pub = await giveIdentity(board)
        const log = await openAudit(board, { epochRecords: 8 })
        await appendMany(log, 3)

        await board.secureElement.clearSlot(SE_SLOT_AUDIT)
        board = await board.powerCycle()
        const reopened = await openAudit(board, { epochRecords: 8 })
        const events: string[] = []
        await reopened.forEach(0, async (r) => {
            events.push(r.event)
        })
        const report = await verify(pub, await exportAll(board, reopened))

        expect(events).toContain("audit-key-lost")
        expect(report.genuine).toBe(true)
    })

    it(
        "GP-TM-55: a record rewritten on flash without the audit key is caught by the device",
        async () => {
            let board = await smallSectorBoard(4)
            const pub = await giveIdentity(board)
            const log = await openAudit(board, { epochRecords: 8 })
            await appendMany(log, 3)
            const head = log.headInfo()!.seq

            // Chip-off attacker: rewrites the newest record's detail and fixes its CRC.
            const part = board.flash.partition("audit")
            const sector = Buffer.from(await part.read(0, part.sectorSize))
            let offset = 0
            let target = -1
            while (offset < sector.length && sector[offset] !== 0xff) {
                const len = sector.readUInt16BE(offset + 4)
                if (decodeFrame(sector.subarray(offset, offset + len)).seq === head) target = offset
                offset += Math.ceil(len / 4) * 4
            }
            const len = sector.readUInt16BE(target + 4)
            const frame = sector.subarray(target, target + len)
            const detailEnd = decodeFrame(Buffer.from(frame)).body.length
            frame[detailEnd - 1] = 0x39
            frame.writeUInt32BE(crc32(frame, 0, len - 4), len - 4)
            await part.erase(0, part.sectorSize)
            await part.program(0, sector)

            board = await board.powerCycle()
            const reopened = await openAudit(board, { epochRecords: 8 })
            const atBoot = reopened.integrity()
            const report = await verify(pub, await exportAll(board, reopened))

            expect(atBoot).toEqual({ ok: false, firstBadSeq: head, reason: "mac" })
            expect(report.genuine).toBe(false)
            expect(report.firstBad).toMatchObject({ seq: head, problem: "device-detected" })
        }
    )
})
