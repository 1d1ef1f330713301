/**
 * The simulated NOR flash behaves like the part it models (hal/flash.ts): sector erase,
 * aligned programs into erased cells only, persistence across a restart, and power cuts
 * with torn writes that stick until the board is powered up again (GP-TM-06, GP-TM-16).
 */

import { afterAll, describe, expect, it } from "vitest"
import { FlashError, PowerLoss } from "../../hal/errors"
import { SimBoard } from "../../sim/board"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"

afterAll(cleanupTestBoards)

const SECTOR = 4096

function filled(length: number, value: number): Buffer {
    return Buffer.alloc(length, value)
}

/** Hex for comparing large buffers: vitest's deep equality is slow on them. */
function hex(buf: Buffer): string {
    return buf.toString("hex")
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
    try {
        await promise
    } catch (err) {
        if (err instanceof FlashError) return err.code
        if (err instanceof PowerLoss) return "power-loss"
        throw err
    }
    return "ok"
}

describe("sim flash semantics", () => {
    it("lists the partitions of the profile in table order and refuses unknown names", async () => {
        const board = await makeTestBoard()

        const names = board.flash.partitionNames()

        expect(names.slice(0, 3)).toEqual(["boot-state", "slot-a", "slot-b"])
        expect(board.flash.partition("slot-a").size).toBe(65536)
        expect(() => board.flash.partition("nope")).toThrow(FlashError)
    })

    it("starts erased, programs aligned data and reads it back", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")

        await part.program(8, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))

        expect(await part.read(0, 8)).toEqual(filled(8, 0xff))
        expect(await part.read(8, 8)).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))
        expect(await part.read(16, 4)).toEqual(filled(4, 0xff))
    })

    it("refuses unaligned offsets and lengths without writing", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")

        expect(await codeOf(part.program(2, filled(4, 0)))).toBe("align")
        expect(await codeOf(part.program(4, filled(3, 0)))).toBe("align")
        expect(await codeOf(part.erase(100, SECTOR))).toBe("align")
        expect(await codeOf(part.erase(0, 100))).toBe("align")

        expect(await part.read(0, 16)).toEqual(filled(16, 0xff))
        expect(board.flash.opCount).toBe(0)
    })

    it("refuses a program into cells not erased, writing nothing of the range", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        await part.program(8, Buffer.from([0xf0, 0xf0, 0xf0, 0xf0]))

        const code = await codeOf(part.program(0, filled(16, 0x00)))

        expect(code).toBe("not-erased")
        expect(await part.read(0, 8)).toEqual(filled(8, 0xff))
        expect(await part.read(8, 4)).toEqual(Buffer.from([0xf0, 0xf0, 0xf0, 0xf0]))
        expect(await part.read(12, 4)).toEqual(filled(4, 0xff))
    })

    it("programs only clear bits: data bits set to 1 leave erased cells at 1", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("prefs")

        await part.program(0, Buffer.from([0x0f, 0xff, 0x00, 0xa5]))

        expect(await part.read(0, 4)).toEqual(Buffer.from([0x0f, 0xff, 0x00, 0xa5]))
        expect(await codeOf(part.program(0, Buffer.from([0xff, 0xff, 0xff, 0xff])))).toBe(
            "not-erased"
        )
    })

    it("erases whole sectors back to 0xFF and then accepts a new program", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        await part.program(0, filled(2 * SECTOR, 0x11))

        await part.erase(0, SECTOR)
        await part.program(0, filled(4, 0x22))

        expect(await part.read(0, 4)).toEqual(filled(4, 0x22))
        expect(hex(await part.read(4, SECTOR - 4))).toBe(hex(filled(SECTOR - 4, 0xff)))
        expect(hex(await part.read(SECTOR, SECTOR))).toBe(hex(filled(SECTOR, 0x11)))
    })

    it("refuses every access outside the partition with \"range\"", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("boot-state")

        expect(await codeOf(part.read(part.size - 4, 8))).toBe("range")
        expect(await codeOf(part.read(-4, 4))).toBe("range")
        expect(await codeOf(part.program(part.size, filled(4, 0)))).toBe("range")
        expect(await codeOf(part.erase(part.size, SECTOR))).toBe("range")
        expect(await codeOf(part.read(0, part.size))).toBe("ok")
    })

    it("keeps partitions apart: writing one never changes its neighbour", async () => {
        const board = await makeTestBoard()
        const a = board.flash.partition("slot-a")
        const b = board.flash.partition("slot-b")

        await a.program(a.size - 4, filled(4, 0))
        await a.erase(0, a.size)

        expect(await b.read(0, 8)).toEqual(filled(8, 0xff))
        expect(await a.read(a.size - 4, 4)).toEqual(filled(4, 0xff))
    })

    it("counts every program and erase, not reads or refused operations", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")

        await part.program(0, filled(4, 0))
        await part.read(0, 4)
        await codeOf(part.program(0, filled(4, 0)))
        await part.erase(0, 2 * SECTOR)

        expect(board.flash.opCount).toBe(2)
    })

    it("survives a power cycle and a process restart: the data is in DEV/flash.bin", async () => {
        const board = await makeTestBoard()
        await board.flash.partition("slot-b").program(64, Buffer.from("persisted!!!"))

        const again = await board.powerCycle()
        const reopened = await SimBoard.open(board.dir)

        expect(await again.flash.partition("slot-b").read(64, 12)).toEqual(
            Buffer.from("persisted!!!")
        )
        expect(await reopened.flash.partition("slot-b").read(64, 12)).toEqual(
            Buffer.from("persisted!!!")
        )
    })
})

describe("sim flash power cuts", () => {
    const DATA = Buffer.alloc(2 * SECTOR)
    for (let i = 0; i < DATA.length; i++) DATA[i] = i & 0x7f

    async function cutProgram(tear: TearMode, seed: number) {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        await part.program(0, filled(4, 0x00))
        board.flash.armPowerCut(1, tear, seed)
        await part.program(4, filled(4, 0x01))

        const code = await codeOf(part.program(SECTOR, DATA))

        return { board, code, after: board.flash.peek("slot-a", SECTOR, DATA.length) }
    }

    it("lets afterOps operations through and interrupts the next one with PowerLoss", async () => {
        const { board, code } = await cutProgram("none", 7)

        expect(code).toBe("power-loss")
        expect(board.flash.opCount).toBe(3)
        expect(board.flash.lastCut()).toMatchObject({ op: "program", partition: "slot-a" })
    })

    it("tear \"none\": the interrupted program changes nothing", async () => {
        const { after } = await cutProgram("none", 7)

        expect(hex(after)).toBe(hex(filled(DATA.length, 0xff)))
    })

    it("tear \"prefix\": a prefix of the program is written, the rest still erased", async () => {
        for (let seed = 1; seed <= 8; seed++) {
            const { after } = await cutProgram("prefix", seed)

            let done = 0
            while (done < DATA.length && after[done] === DATA[done]) done++
            expect(hex(after.subarray(done))).toBe(hex(filled(DATA.length - done, 0xff)))
        }
    })

    it("tear \"garbage\": random bytes inside the program range, nothing outside", async () => {
        for (let seed = 1; seed <= 8; seed++) {
            const { board, after } = await cutProgram("garbage", seed)

            expect(after.equals(filled(DATA.length, 0xff))).toBe(false)
            const before = board.flash.peek("slot-a", 8, SECTOR - 8)
            const beyond = board.flash.peek("slot-a", 3 * SECTOR, SECTOR)
            expect(hex(before)).toBe(hex(filled(SECTOR - 8, 0xff)))
            expect(hex(beyond)).toBe(hex(filled(SECTOR, 0xff)))
        }
    })

    it("a sector torn by a cut program is usable again after an erase", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        board.flash.armPowerCut(0, "garbage", 13)

        await codeOf(part.program(0, filled(SECTOR, 0x00)))

        const torn = board.flash.peek("slot-a", 0, SECTOR)
        const next = await board.powerCycle()
        await next.flash.partition("slot-a").erase(0, SECTOR)
        expect(torn.equals(filled(SECTOR, 0xff))).toBe(false)
        const erased = await next.flash.partition("slot-a").read(0, SECTOR)
        expect(hex(erased)).toBe(hex(filled(SECTOR, 0xff)))
    })

    it("tear \"prefix\" on an erase: earlier sectors erased, the current one garbage", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        await part.program(0, filled(4 * SECTOR, 0x00))
        board.flash.armPowerCut(0, "prefix", 3)

        const code = await codeOf(part.erase(0, 4 * SECTOR))

        expect(code).toBe("power-loss")
        const after = board.flash.peek("slot-a", 0, 4 * SECTOR)
        let erased = 0
        while (after.subarray(erased * SECTOR, (erased + 1) * SECTOR).equals(filled(SECTOR, 0xff)))
            erased++
        expect(erased).toBeLessThan(4)
        const torn = after.subarray(erased * SECTOR, (erased + 1) * SECTOR)
        expect(torn.equals(filled(SECTOR, 0x00))).toBe(false)
        const rest = after.subarray((erased + 1) * SECTOR)
        expect(hex(rest)).toBe(hex(filled(rest.length, 0x00)))
    })

    it("tear \"garbage\" on an erase scrambles part of the range only", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("slot-a")
        await part.program(0, filled(2 * SECTOR, 0x00))
        board.flash.armPowerCut(0, "garbage", 11)

        await codeOf(part.erase(0, SECTOR))

        expect(board.flash.peek("slot-a", 0, SECTOR).equals(filled(SECTOR, 0x00))).toBe(false)
        expect(hex(board.flash.peek("slot-a", SECTOR, SECTOR))).toBe(hex(filled(SECTOR, 0x00)))
    })

    it("reproduces the same torn bytes from the same seed", async () => {
        const first = await cutProgram("garbage", 42)
        const second = await cutProgram("garbage", 42)

        expect(hex(first.after)).toBe(hex(second.after))
    })

    it("keeps PowerLoss sticky: flash, OTP and SE all refuse until a power cycle", async () => {
        const { board } = await cutProgram("prefix", 5)
        const part = board.flash.partition("slot-a")

        expect(await codeOf(part.read(0, 4))).toBe("power-loss")
        expect(await codeOf(part.erase(0, SECTOR))).toBe("power-loss")
        expect(await codeOf(part.program(2 * SECTOR + 8192, filled(4, 0)))).toBe("power-loss")
        await expect(board.otp.raiseCounter(1)).rejects.toBeInstanceOf(PowerLoss)
        await expect(board.otp.readCounter()).rejects.toBeInstanceOf(PowerLoss)
        await expect(board.secureElement.incrementCounter(0)).rejects.toBeInstanceOf(PowerLoss)
        await expect(board.secureElement.generateKey(0)).rejects.toBeInstanceOf(PowerLoss)
        await expect(board.reset.reboot("software")).rejects.toBeInstanceOf(PowerLoss)
        expect(board.powerState()).toBe("cut")

        const next = await board.powerCycle()

        expect(await next.flash.partition("slot-a").read(0, 4)).toEqual(filled(4, 0x00))
        expect(await next.otp.readCounter()).toBe(0)
        expect(next.reset.lastReason()).toBe("power-loss")
    })

    it("keeps the torn state across the power cycle (it is on the chip)", async () => {
        const { board, after } = await cutProgram("garbage", 9)

        const next = await board.powerCycle()

        expect(hex(await next.flash.partition("slot-a").read(SECTOR, DATA.length))).toBe(hex(after))
    })

    it("disarmPowerCut cancels an armed cut", async () => {
        const board = await makeTestBoard()
        board.flash.armPowerCut(0, "garbage")

        board.flash.disarmPowerCut()
        await board.flash.partition("prefs").program(0, filled(4, 0))

        expect(board.powerState()).toBe("on")
    })

    it("a board switched off by powerCycle refuses the calls of the old run", async () => {
        const board = await makeTestBoard()
        const part = board.flash.partition("prefs")

        await board.powerCycle()

        await expect(part.program(0, filled(4, 0))).rejects.toBeInstanceOf(PowerLoss)
        await expect(board.otp.readLocks()).rejects.toBeInstanceOf(PowerLoss)
        expect(board.flash.peek("prefs", 0, 4)).toEqual(filled(4, 0xff))
    })
})
