/**
 * The sealed prefs store (src/prefs.ts, src/privacy/seal.ts; GP-TM-31 integrity at rest,
 * GP-TM-12 consent records): each record carries a MAC by a secret in the secure element,
 * so an attacker with the flash chip cannot forge consent, even with a valid digest; a
 * refused copy is erased and reported; a factory reset retires the secret.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss, UnsupportedError } from "../../hal/errors"
import { SE_SLOT_PREFS } from "../../hal/secure-element"
import { factoryReset } from "../../src/admin/recovery"
import { AdminStore, PARTITION_SECURE_SETTINGS } from "../../src/admin/store"
import { PARTITION_PREFS, PrefsStore, encodePrefsRecord, encodeSealedRecord } from "../../src/prefs"
import { SimBoard } from "../../sim/board"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards } from "../../sim/testing"
import { AuditRow, auditInto, privacyBoard } from "./helpers"

afterAll(() => cleanupTestBoards())

async function openSealed(board: SimBoard, rows: AuditRow[] = []): Promise<PrefsStore> {
    return PrefsStore.open(board.flash.partition(PARTITION_PREFS), board.crypto, {
        secureElement: board.secureElement,
        onTamper: auditInto(rows),
    })
}

function raw(board: SimBoard): Buffer {
    return board.flash.peek(PARTITION_PREFS, 0, board.flash.partition(PARTITION_PREFS).size)
}

/** What an attacker with a flash programmer does: rewrite copy `index` with `record`. */
async function rewriteCopy(board: SimBoard, index: number, record: Buffer): Promise<void> {
    const p = board.flash.partition(PARTITION_PREFS)
    const half = p.size / 2
    await p.erase(index * half, half)
    await p.program(index * half, record)
}

/** Which copy holds the record now (the other one is erased). */
function liveCopy(board: SimBoard): number {
    const image = raw(board)
    return image.subarray(0, 4).toString() === "BWPF" ? 0 : 1
}

describe("sealed prefs store", () => {
    it("GP-TM-31: keeps values across a power cycle; the secret is made at first write", async () => {
        let board = await privacyBoard()
        await expect(board.secureElement.hmac(SE_SLOT_PREFS, Buffer.from("x"))).rejects.toThrow()
        const prefs = await openSealed(board)
        expect(prefs.isSealed()).toBe(true)
        await prefs.update({ "consent.telemetry": "granted", "owner.name": "Zoë" })
        expect(raw(board)[4 + liveCopy(board) * (raw(board).length / 2)]).toBe(2)
        board = await board.powerCycle()
        const rows: AuditRow[] = []
        const again = await openSealed(board, rows)
        expect(again.get("consent.telemetry")).toBe("granted")
        expect(again.get("owner.name")).toBe("Zoë")
        expect(again.tamperFindings()).toEqual([])
        expect(rows).toEqual([])
    })

    it("GP-TM-31: a forged consent record with a valid digest but a wrong MAC is refused", async () => {
        let board = await privacyBoard()
        const prefs = await openSealed(board)
        await prefs.update({ "consent.location": "withdrawn" })
        const free = 1 - liveCopy(board)

        // The attacker copies the layout, a higher seq and a correct SHA-256; the MAC
        // field gets whatever they can compute without the secret.
        const forged = encodePrefsRecord(board.crypto, { "consent.location": "granted" }, 99, 4)
        forged[4] = 2
        const body = forged.readUInt32BE(12)
        const sealed = Buffer.alloc(forged.length + 32, 0xff)
        forged.copy(sealed, 0, 0, 16 + body)
        board.crypto.sha256([sealed.subarray(0, 16), sealed.subarray(16, 16 + body)])
            .copy(sealed, 16 + body)
        board.crypto.sha256([Buffer.from("guess"), sealed.subarray(0, 16 + body)])
            .copy(sealed, 16 + body + 32)
        await rewriteCopy(board, free, sealed)

        board = await board.powerCycle()
        const rows: AuditRow[] = []
        const again = await openSealed(board, rows)
        expect(again.get("consent.location")).toBe("withdrawn")
        expect(again.tamperFindings()).toEqual([`store=prefs copy=${free} reason=mac`])
        expect(rows).toEqual([
            {
                event: "tamper",
                actor: "device",
                outcome: "failure",
                detail: `store=prefs copy=${free} reason=mac`,
            },
        ])
        // Erased like a torn copy: reported once, not at every boot.
        const half = raw(board).length / 2
        expect(raw(board).subarray(free * half, (free + 1) * half).every((b) => b === 0xff)).toBe(
            true
        )
        board = await board.powerCycle()
        expect((await openSealed(board)).tamperFindings()).toEqual([])
    })

    it("GP-TM-31: an unsealed record or one sealed by another device is refused", async () => {
        let board = await privacyBoard({ seed: 3 })
        const other = await privacyBoard({ seed: 4 })
        const prefs = await openSealed(board)
        await prefs.set("consent.telemetry", "withdrawn")
        const free = 1 - liveCopy(board)

        const unsealed = encodePrefsRecord(board.crypto, { "consent.telemetry": "granted" }, 50, 4)
        await rewriteCopy(board, free, unsealed)
        board = await board.powerCycle()
        let again = await openSealed(board)
        expect(again.get("consent.telemetry")).toBe("withdrawn")
        expect(again.tamperFindings()).toEqual([`store=prefs copy=${free} reason=unsealed`])

        const foreign = await encodeSealedRecord(
            other.crypto,
            other.secureElement,
            { "consent.telemetry": "granted" },
            60,
            4
        )
        await rewriteCopy(board, free, foreign)
        board = await board.powerCycle()
        again = await openSealed(board)
        expect(again.get("consent.telemetry")).toBe("withdrawn")
        expect(again.tamperFindings()).toEqual([`store=prefs copy=${free} reason=mac`])
    })

    it("GP-TM-31: both copies forged leaves an empty store, not the forgery", async () => {
        let board = await privacyBoard({ seed: 5 })
        const other = await privacyBoard({ seed: 6 })
        const record = await encodeSealedRecord(other.crypto, other.secureElement,
            { "consent.telemetry": "granted" }, 7, 4)
        await rewriteCopy(board, 0, record)
        await rewriteCopy(board, 1, record)
        board = await board.powerCycle()
        const again = await openSealed(board)
        expect(again.keys()).toEqual([])
        expect(again.tamperFindings()).toHaveLength(2)
        expect(raw(board).every((b) => b === 0xff)).toBe(true)
    })

    it("GP-TM-31: a board without a secure element is refused, with no unsealed fallback", async () => {
        const board = await privacyBoard()
        const opening = PrefsStore.open(board.flash.partition(PARTITION_PREFS), board.crypto, {
            secureElement: undefined,
        })
        await expect(opening).rejects.toBeInstanceOf(UnsupportedError)
        expect(raw(board).every((b) => b === 0xff)).toBe(true)
    })

    it("GP-TM-31: after a factory reset, a dump of the old records does not verify", async () => {
        let board = await privacyBoard({ seed: 8 })
        const prefs = await openSealed(board)
        await prefs.update({ "consent.telemetry": "granted", "owner.name": "Ada" })
        const dump = raw(board)

        const store = new AdminStore(board.flash.partition(PARTITION_SECURE_SETTINGS))
        await store.load()
        await factoryReset(
            { flash: board.flash, store, audit: null, secureElement: board.secureElement },
            "console:physical"
        )
        expect(raw(board).every((b) => b === 0xff)).toBe(true)
        await expect(board.secureElement.hmac(SE_SLOT_PREFS, Buffer.from("x"))).rejects.toThrow()

        // The attacker writes the saved image back.
        await board.flash.partition(PARTITION_PREFS).program(0, dump)
        board = await board.powerCycle()
        const again = await openSealed(board)
        expect(again.keys()).toEqual([])
        expect(again.tamperFindings()).toHaveLength(1)
        await again.set("pref.unit", "c")
        board = await board.powerCycle()
        expect((await openSealed(board)).get("pref.unit")).toBe("c")
    })

    it("GP-TM-31: after the secure element is zeroized the old records are refused", async () => {
        let board = await privacyBoard({ seed: 9 })
        await (await openSealed(board)).set("consent.telemetry", "granted")
        await board.secureElement.zeroize()
        board = await board.powerCycle()
        const rows: AuditRow[] = []
        const again = await openSealed(board, rows)
        expect(again.get("consent.telemetry")).toBeNull()
        expect(rows.map((r) => r.event)).toEqual(["tamper"])
    })
})

describe("sealed prefs store under power cuts", () => {
    const TEARS: TearMode[] = ["none", "prefix", "garbage"]

    it("GP-TM-31: a cut at any flash operation of a sealed write leaves old or new", async () => {
        const seen = new Set<string>()
        for (const tear of TEARS) {
            for (let cut = 0; cut < 6; cut++) {
                let board = await privacyBoard({ seed: 40 + cut })
                const prefs = await openSealed(board)
                await prefs.update({ "consent.telemetry": "granted", "owner.name": "Ada" })
                const old = JSON.stringify(prefs.snapshot())
                const next = { "consent.telemetry": "withdrawn" }

                board.flash.armPowerCut(cut, tear, 200 + cut)
                try {
                    await prefs.replaceAll(next)
                } catch (e) {
                    if (!(e instanceof PowerLoss)) throw e
                }
                board.flash.disarmPowerCut()
                board = await board.powerCycle()
                const rows: AuditRow[] = []
                const after = await openSealed(board, rows)
                const got = JSON.stringify(after.snapshot())

                const where = `${tear} cut ${cut}`
                expect([old, JSON.stringify(next)], where).toContain(got)
                // A torn write is not a forgery: nothing is reported.
                expect(rows, where).toEqual([])
                seen.add(got === old ? "old" : "new")
            }
        }
        expect([...seen].sort()).toEqual(["new", "old"])
    })
})
