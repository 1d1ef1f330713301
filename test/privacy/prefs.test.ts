/**
 * The prefs store (src/prefs.ts; GP-TM-20, GP-TM-12): values survive reboots, a batch is
 * all or nothing, a power cut at any flash operation of a write leaves the old or the new
 * content, and no superseded value stays readable in the partition.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { PARTITION_PREFS, PrefsError, PrefsStore, encodePrefsRecord } from "../../src/prefs"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards } from "../../sim/testing"
import { privacyBoard } from "./helpers"

afterAll(() => cleanupTestBoards())

async function open(board: Awaited<ReturnType<typeof privacyBoard>>) {
    return PrefsStore.open(board.flash.partition(PARTITION_PREFS), board.crypto)
}

function rawPrefs(board: Awaited<ReturnType<typeof privacyBoard>>): Buffer {
    const p = board.flash.partition(PARTITION_PREFS)
    return board.flash.peek(PARTITION_PREFS, 0, p.size)
}

describe("prefs store", () => {
    it("GP-TM-20: keeps values across a power cycle, non-ASCII text included", async () => {
        let board = await privacyBoard()
        const prefs = await open(board)

        await prefs.update({ "pref.unit": "c", "owner.name": "Zoë Åström" })
        board = await board.powerCycle()
        const again = await open(board)

        expect(again.get("pref.unit")).toBe("c")
        expect(again.get("owner.name")).toBe("Zoë Åström")
        expect(again.keys().sort()).toEqual(["owner.name", "pref.unit"])
    })

    it("applies a batch of sets and removals as one write", async () => {
        const board = await privacyBoard()
        const prefs = await open(board)
        await prefs.update({ a: "1", b: "2" })
        const before = board.flash.opCount

        await prefs.update({ a: null, c: "3" })

        expect(prefs.snapshot()).toEqual({ b: "2", c: "3" })
        expect(board.flash.opCount - before).toBeLessThanOrEqual(3)
    })

    it("GP-TM-12: leaves no superseded value readable in the partition", async () => {
        const board = await privacyBoard()
        const prefs = await open(board)
        await prefs.set("owner.name", "Secret Person")

        await prefs.set("owner.name", "Other")
        await prefs.remove("owner.name")

        expect(rawPrefs(board).includes(Buffer.from("Secret Person"))).toBe(false)
        expect(rawPrefs(board).includes(Buffer.from("Other"))).toBe(false)
    })

    it("refuses bad keys, values that are not strings, and overflow", async () => {
        const board = await privacyBoard()
        const prefs = await open(board)

        await expect(prefs.set("Bad Key", "x")).rejects.toMatchObject({ check: "key" })
        await expect(prefs.update({ ok: 5 as unknown as string })).rejects.toMatchObject({
            check: "value",
        })
        await expect(prefs.set("big", "x".repeat(prefs.capacity()))).rejects.toMatchObject({
            check: "full",
        })
        expect(prefs.keys()).toEqual([])
    })

    it("refuses a second writer while a write is in flight", async () => {
        const board = await privacyBoard()
        const prefs = await open(board)

        const first = prefs.set("a", "1")
        const second = prefs.set("b", "2")

        await first
        await expect(second).rejects.toBeInstanceOf(PrefsError)
        expect(prefs.snapshot()).toEqual({ a: "1" })
    })

    it("reads a partition of garbage as empty and erases it", async () => {
        const board = await privacyBoard()
        const p = board.flash.partition(PARTITION_PREFS)
        await board.debugFlash(PARTITION_PREFS, Buffer.alloc(p.size, 0x5a))

        const prefs = await open(board)

        expect(prefs.keys()).toEqual([])
        expect(rawPrefs(board).every((b) => b === 0xff)).toBe(true)
    })

    it("ignores a copy with a flipped bit and keeps the other", async () => {
        const board = await privacyBoard()
        const p = board.flash.partition(PARTITION_PREFS)
        const half = p.size / 2
        const older = encodePrefsRecord(board.crypto, { a: "old" }, 1, 4)
        const newer = encodePrefsRecord(board.crypto, { a: "new" }, 2, 4)
        newer[20] ^= 0x01
        const image = Buffer.alloc(p.size, 0xff)
        older.copy(image, 0)
        newer.copy(image, half)
        await board.debugFlash(PARTITION_PREFS, image)

        const prefs = await open(board)

        expect(prefs.get("a")).toBe("old")
        expect(rawPrefs(board).subarray(half).every((b) => b === 0xff)).toBe(true)
    })

    it("opens a partition holding two whole copies on the newer and erases the older", async () => {
        const board = await privacyBoard()
        const p = board.flash.partition(PARTITION_PREFS)
        const image = Buffer.alloc(p.size, 0xff)
        encodePrefsRecord(board.crypto, { a: "new" }, 8, 4).copy(image, 0)
        encodePrefsRecord(board.crypto, { a: "old" }, 7, 4).copy(image, p.size / 2)
        await board.debugFlash(PARTITION_PREFS, image)

        const prefs = await open(board)
        await prefs.set("b", "x")

        expect(prefs.snapshot()).toEqual({ a: "new", b: "x" })
        expect(rawPrefs(board).includes(Buffer.from('"old"'))).toBe(false)
    })
})

const TEARS: TearMode[] = ["none", "prefix", "garbage"]

describe("prefs store under power cuts", () => {
    it("GP-TM-20: a cut at any flash operation of a write leaves old or new content", async () => {
        const seen = new Set<string>()
        for (const tear of TEARS) {
            for (let cut = 0; cut < 8; cut++) {
                let board = await privacyBoard({ seed: 17 + cut })
                const prefs = await open(board)
                await prefs.update({ "pref.unit": "c", "owner.name": "Ada" })
                await prefs.set("pref.unit", "f")
                const old = prefs.snapshot()
                const next = { "pref.unit": "k" }

                board.flash.armPowerCut(cut, tear, 100 + cut)
                let interrupted = false
                try {
                    await prefs.replaceAll(next)
                } catch (e) {
                    if (!(e instanceof PowerLoss)) throw e
                    interrupted = true
                }
                board.flash.disarmPowerCut()
                board = await board.powerCycle()
                const after = (await open(board)).snapshot()

                const where = `${tear} cut ${cut}`
                if (!interrupted) expect(after, where).toEqual(next)
                else expect([old, next], where).toContainEqual(after)
                if (JSON.stringify(after) === JSON.stringify(next))
                    expect(rawPrefs(board).includes(Buffer.from("Ada")), where).toBe(false)
                seen.add(JSON.stringify(after) === JSON.stringify(old) ? "old" : "new")
            }
        }
        expect([...seen].sort()).toEqual(["new", "old"])
    })
})
