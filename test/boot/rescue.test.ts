/**
 * The signed rescue path of a board in recovery (boot/rescue.ts, docs/boot.md "Recovery"):
 * refused unless the board is in recovery and the button is held, the image verified in RAM
 * with the stub's own checks before flash is touched, written, read back and made active;
 * power-safe at every flash operation; the "rescued" event it leaves for the next boot's
 * measured-boot record, on which the stub decides exactly as on "none"; and
 * `bulwark sim rescue` on a locked board (GP-TM-04, GP-TM-06, GP-TM-16, GP-TM-33, GP-TM-55).
 */

import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { readU16 } from "../../boot/bytes"
import { ENTRY_SIGNATURE, HEADER_SIZE } from "../../boot/image-format"
import { RescueBoard, RescueError, rescue } from "../../boot/rescue"
import { BootEvent, BootState, SlotName, readBootState, writeBootState } from "../../boot/state"
import { checkRecovery, confirmRunningImage, currentBootState, markPending } from "../../boot/stub"
import { FlashPartition, PARTITION_BOOT_STATE } from "../../hal/flash"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { generateReleaseKey, publicKeyFileText, publicPart } from "../../tools/keyfile"
import { runCli } from "../helpers/cli"
import { entriesOf, trailerOffset, withTrailer } from "../image/helpers"
import {
    boot,
    bootConfig,
    CLASS,
    cutAndRestart,
    flashSlot,
    newBoard,
    releaseKey,
    signedImage,
    TEARS,
} from "./helpers"

afterAll(cleanupTestBoards)

/** The OTP counter of the broken boards: v1 (counter 1) in slot b is below it. */
const OTP_COUNTER = 2

let v1: Buffer
let v2: Buffer
/** The rescue image: counter 3, payload over one sector so it takes two programs. */
let rescueImage: Buffer

beforeAll(async () => {
    v1 = await signedImage("1.0.0", 1)
    v2 = await signedImage("2.0.0", 2)
    rescueImage = await signedImage("3.0.0", 3, { payload: Buffer.alloc(6000, 0x5a) })
})

function tampered(image: Buffer, at: number): Buffer {
    const bad = Buffer.from(image)
    bad[at] ^= 0x01
    return bad
}

/**
 * A board in recovery: slot a holds a tampered v2 (digest), slot b the genuine v1 below the
 * OTP counter (security-counter). `lock` burns the debug-disable fuse afterwards.
 */
async function brokenBoard(options: { lock?: boolean; trust?: Buffer[] } = {}): Promise<SimBoard> {
    const trust = options.trust ?? [releaseKey.anchor]
    const board = await newBoard({ counter: OTP_COUNTER, trust: trust })
    await flashSlot(board, "a", tampered(v2, HEADER_SIZE + 10))
    await flashSlot(board, "b", v1)
    if (options.lock) {
        await board.otp.burnLock("debug-disabled")
        await board.otp.burnLock("keys-locked")
    }
    return board
}

/** Everything stored on the board: each partition's bytes, the OTP counter and key slots. */
async function snapshot(board: SimBoard): Promise<string> {
    const parts = board.flash.partitionNames().map((name) => {
        const size = board.flash.partition(name).size
        return name + ":" + board.flash.peek(name, 0, size).toString("hex")
    })
    const slots = []
    for (let i = 0; i < 3; i++) slots.push(await board.otp.readKeySlot(i))
    return JSON.stringify({ parts, counter: await board.otp.readCounter(), slots })
}

/** The check of the RescueError a rescue of `board`'s pieces rejects with; "rescued" if none. */
async function refusalOf(hal: RescueBoard, board: SimBoard, image: Buffer): Promise<string> {
    try {
        await rescue(hal, bootConfig(board), image)
        return "rescued"
    } catch (err) {
        if (err instanceof RescueError) return err.check
        throw err
    }
}

/** Rescues `board` with `image` with the button held; returns the check, or "rescued". */
async function attempt(board: SimBoard, image: Buffer): Promise<string> {
    board.button.press()
    return refusalOf(board, board, image)
}

/** The attempt must be refused with `check` and leave every stored byte as it was. */
async function expectRefusedUnchanged(board: SimBoard, image: Buffer, check: string) {
    const before = await snapshot(board)

    const result = await attempt(board, image)

    expect(result).toBe(check)
    expect(await snapshot(board)).toBe(before)
    expect((await boot(board)).recovery).toBe(true)
}

/** Writes a boot state (the next record of the board's boot-state partition). */
async function setBootState(board: SimBoard, state: Omit<BootState, "seq">): Promise<void> {
    const part = board.flash.partition(PARTITION_BOOT_STATE)
    const stored = await readBootState(board.crypto, part)
    await writeBootState(board.crypto, part, stored, { seq: 0, ...state })
}

function bootStateBytes(board: SimBoard): string {
    return board.flash.peek(PARTITION_BOOT_STATE, 0, 8192).toString("hex")
}

function unsigned(image: Buffer): Buffer {
    const kept = entriesOf(image).filter((e) => readU16(e, 0) !== ENTRY_SIGNATURE)
    return withTrailer(image, kept)
}

describe("rescue of a board in recovery", () => {
    it("GP-TM-16: a locked board whose two slots fail verification boots again after a signed rescue image", async () => {
        const board = await brokenBoard({ lock: true })
        const before = await boot(board)
        await expect(flashSlot(board, "a", rescueImage)).rejects.toThrow(/debug port/)
        board.button.press()

        const result = await rescue(board, bootConfig(board), rescueImage)
        const next = await board.powerCycle()
        const after = await boot(next)

        expect(before.recovery).toBe(true)
        expect(result).toMatchObject({ slot: "a", version: "3.0.0", securityCounter: 3 })
        expect(result.refused.map((r) => [r.slot, r.check])).toEqual([
            ["a", "digest"],
            ["b", "security-counter"],
        ])
        expect(after.booted).toBe("a")
        expect(after.trial).toBe(false)
        expect(after.measured?.digest).toBe(result.digest)
        expect(after.measured?.version).toBe("3.0.0")
        expect(await currentBootState(next)).toMatchObject({
            active: "a",
            pending: null,
            attempts: 0,
        })
    })

    it("GP-TM-06: a rescue leaves the OTP counter where it was; it rises with the next confirmed update", async () => {
        const board = await brokenBoard()

        await attempt(board, rescueImage)
        const afterRescue = await board.otp.readCounter()
        await flashSlot(board, "b", await signedImage("4.0.0", 4))
        await markPending(board, "b")
        const trial = await boot(board)
        await confirmRunningImage(board, trial.measured!)

        expect(afterRescue).toBe(OTP_COUNTER)
        expect(await board.otp.readCounter()).toBe(4)
    })

    it("GP-TM-16: the rescue's recovery check agrees with the boot stub's decision in every boot state", async () => {
        const bad = tampered(v2, HEADER_SIZE + 10)
        const layouts: [string, Buffer | null, Buffer | null, boolean][] = [
            ["both valid", v2, v2, false],
            ["only a valid", v2, bad, false],
            ["only b valid", bad, v2, false],
            ["b below the counter, a tampered", bad, v1, true],
            ["a empty, b tampered", null, bad, true],
            ["both empty", null, null, true],
        ]
        const seen: string[] = []
        for (const [name, a, b, pendingB] of layouts.flatMap(
            (l): [string, Buffer | null, Buffer | null, boolean][] => [
                [l[0], l[1], l[2], false],
                [l[0] + ", b pending", l[1], l[2], true],
            ]
        )) {
            const board = await newBoard({ counter: OTP_COUNTER })
            if (a) await flashSlot(board, "a", a)
            if (b) await flashSlot(board, "b", b)
            if (pendingB) await markPending(board, "b")

            const check = await checkRecovery(board, bootConfig(board))
            const decision = await boot(board)

            expect(check.recovery, name).toBe(decision.recovery)
            seen.push(`${name}: ${check.recovery}`)
        }
        expect(seen.filter((s) => s.endsWith("true"))).toHaveLength(6)
    })
})

describe("rescue refusals (nothing stored changes)", () => {
    it("GP-TM-06: rescue is refused on a board that can still boot (no replacement or downgrade path)", async () => {
        const bootable: [string, Buffer | null, Buffer | null][] = [
            ["a valid", v2, null],
            ["only b valid", tampered(v2, HEADER_SIZE + 10), v2],
        ]
        for (const [name, a, b] of bootable) {
            const board = await newBoard({ counter: OTP_COUNTER })
            if (a) await flashSlot(board, "a", a)
            if (b) await flashSlot(board, "b", b)
            const before = await snapshot(board)

            const newer = await attempt(board, rescueImage)
            const same = await attempt(board, v2)

            expect([newer, same], name).toEqual(["not-in-recovery", "not-in-recovery"])
            expect(await snapshot(board), name).toBe(before)
        }
    })

    it("GP-TM-16: rescue is refused without the button held (physical presence)", async () => {
        const board = await brokenBoard({ lock: true })
        const before = await snapshot(board)
        board.button.release()
        const noButton: RescueBoard = {
            crypto: board.crypto,
            flash: board.flash,
            otp: board.otp,
        }

        const released = await refusalOf(board, board, rescueImage)
        const absent = await refusalOf(noButton, board, rescueImage)

        expect(released).toBe("presence")
        expect(absent).toBe("presence")
        expect(await snapshot(board)).toBe(before)
    })

    it("GP-TM-04: a rescue image with any flipped byte (sampled positions of header, payload, trailer) is refused and flash is unchanged", async () => {
        const board = await brokenBoard({ lock: true })
        const before = await snapshot(board)
        const trailer = trailerOffset(rescueImage)
        const positions: number[] = []
        for (let i = 0; i < HEADER_SIZE; i += 2) positions.push(i)
        for (let i = HEADER_SIZE; i < trailer; i += 211) positions.push(i)
        for (let i = trailer; i < rescueImage.length; i += 5) positions.push(i)
        positions.push(trailer - 1, rescueImage.length - 1)

        const accepted: number[] = []
        for (const at of positions) {
            const check = await attempt(board, tampered(rescueImage, at))
            if (!check.startsWith("image:")) accepted.push(at)
        }

        expect(positions.length).toBeGreaterThan(100)
        expect(accepted).toEqual([])
        expect(await snapshot(board)).toBe(before)
    })

    it("GP-TM-04: an unsigned rescue image (no signature entry, or a bare app bundle) is refused and flash is unchanged", async () => {
        const board = await brokenBoard({ lock: true })

        await expectRefusedUnchanged(board, unsigned(rescueImage), "image:entry-missing")
        const bundle = Buffer.from("module.exports = {}\n".repeat(20))
        await expectRefusedUnchanged(board, bundle, "image:magic")
    })

    it("GP-TM-04: a rescue image signed by a key that is no trust anchor is refused (image:key-unknown)", async () => {
        const stranger = generateReleaseKey("p256")
        const image = await signedImage("3.0.0", 3, { key: stranger })

        await expectRefusedUnchanged(await brokenBoard({ lock: true }), image, "image:key-unknown")
    })

    it("GP-TM-04: a rescue image signed by the key of a revoked OTP key slot is refused (image:key-revoked)", async () => {
        const second = generateReleaseKey("p256")
        const board = await brokenBoard({ trust: [releaseKey.anchor, second.anchor] })
        await board.otp.revokeKeySlot(0)

        await expectRefusedUnchanged(board, rescueImage, "image:key-revoked")
    })

    it("GP-TM-04: a rescue image for another device class is refused (image:device-class)", async () => {
        const image = await signedImage("3.0.0", 3, { deviceClass: "another-class" })

        await expectRefusedUnchanged(await brokenBoard({ lock: true }), image, "image:device-class")
    })

    it("GP-TM-06: a rescue image whose security counter is below the OTP counter is refused (image:security-counter)", async () => {
        const board = await brokenBoard({ lock: true })

        await expectRefusedUnchanged(board, v1, "image:security-counter")
    })

    it("GP-TM-04: bytes after the rescue image's trailer are refused (image:trailing-bytes)", async () => {
        const padded = Buffer.concat([rescueImage, Buffer.from("extra")])

        await expectRefusedUnchanged(await brokenBoard(), padded, "image:trailing-bytes")
    })

    it("GP-TM-16: a rescue image larger than slot a is refused (size) before flash is touched", async () => {
        const big = await signedImage("3.0.0", 3, { payload: Buffer.alloc(70000, 1) })

        await expectRefusedUnchanged(await brokenBoard(), big, "size")
    })

    it("GP-TM-16: a slot a that does not verify after the write is refused (readback); the board stays in recovery", async () => {
        const board = await brokenBoard()
        const slotA = board.flash.partition("slot-a")
        const faulty: FlashPartition = Object.create(slotA, {
            program: {
                value: async (offset: number, data: Buffer) => {
                    const bad = Buffer.from(data)
                    if (offset === 0) bad[HEADER_SIZE + 1] ^= 0x01
                    await slotA.program(offset, bad)
                },
            },
        })
        const flash = Object.create(board.flash, {
            partition: {
                value: (name: string) => (name === "slot-a" ? faulty : board.flash.partition(name)),
            },
        })
        const stateBefore = board.flash.peek(PARTITION_BOOT_STATE, 0, 8192).toString("hex")
        board.button.press()

        const hal: RescueBoard = {
            crypto: board.crypto,
            flash: flash,
            otp: board.otp,
            button: board.button,
        }
        const check = await refusalOf(hal, board, rescueImage)

        expect(check).toBe("readback")
        expect(board.flash.peek(PARTITION_BOOT_STATE, 0, 8192).toString("hex")).toBe(stateBefore)
        expect((await boot(board)).recovery).toBe(true)
    })
})

describe("the rescued event", () => {
    it("GP-TM-55: the boot after a rescue reports event rescued for slot a, and so does every later boot until a boot-state write; the stub writes nothing for it", async () => {
        const board = await brokenBoard({ lock: true })
        expect(await attempt(board, rescueImage)).toBe("rescued")

        const first = await boot(await board.powerCycle())
        const stateAfterFirst = bootStateBytes(board)
        const again = await board.powerCycle()
        const second = await boot(again)

        for (const decision of [first, second]) {
            expect(decision.booted).toBe("a")
            expect(decision.measured).toMatchObject({ version: "3.0.0", trial: false })
            expect(decision.measured).toMatchObject({ event: "rescued", eventSlot: "a" })
        }
        expect(bootStateBytes(again)).toBe(stateAfterFirst)
        expect(await currentBootState(again)).toMatchObject({
            active: "a",
            pending: null,
            event: "rescued",
            eventSlot: "a",
        })
        // The rescue image's counter (3) is above the OTP counter: only "confirmed" burns it.
        expect(await again.otp.readCounter()).toBe(OTP_COUNTER)
    })

    it("GP-TM-18: a later boot-state write replaces the rescued event (pending, then confirm)", async () => {
        const board = await brokenBoard()
        await attempt(board, rescueImage)
        await flashSlot(board, "b", await signedImage("4.0.0", 4))

        await markPending(board, "b")
        const trial = await boot(board)
        await confirmRunningImage(board, trial.measured!)
        const confirmed = await boot(board)

        expect(trial.measured).toMatchObject({ slot: "b", trial: true, event: "none", eventSlot: null })
        expect(confirmed.measured).toMatchObject({ slot: "b", event: "confirmed", eventSlot: "b" })
        expect(await board.otp.readCounter()).toBe(4)
    })

    it("GP-TM-16: the stub decides on a rescued event exactly as on none (slots, trial, revert, fallback, OTP counter)", async () => {
        const bad = tampered(v2, HEADER_SIZE + 10)
        const v3 = await signedImage("3.0.0", 3)
        const layouts: {
            name: string
            a: Buffer
            b: Buffer | null
            active: SlotName
            pending: SlotName | null
            attempts: number
        }[] = [
            { name: "a above the OTP counter", a: v3, b: null, active: "a", pending: null, attempts: 0 },
            { name: "b pending, valid", a: v3, b: v2, active: "a", pending: "b", attempts: 0 },
            { name: "b pending, refused", a: v3, b: v1, active: "a", pending: "b", attempts: 0 },
            { name: "b pending, attempts used", a: v3, b: v2, active: "a", pending: "b", attempts: 3 },
            { name: "active b empty, fallback to a", a: v3, b: null, active: "b", pending: null, attempts: 0 },
            { name: "active a tampered, fallback to b", a: bad, b: v2, active: "a", pending: null, attempts: 0 },
        ]
        for (const l of layouts) {
            const outcomes = []
            for (const [event, eventSlot] of [["none", null], ["rescued", "a"]] as [BootEvent, SlotName | null][]) {
                const board = await newBoard({ counter: OTP_COUNTER })
                await flashSlot(board, "a", l.a)
                if (l.b) await flashSlot(board, "b", l.b)
                await setBootState(board, {
                    active: l.active,
                    pending: l.pending,
                    attempts: l.attempts,
                    event: event,
                    eventSlot: eventSlot,
                })

                const seqBefore = (await currentBootState(board)).seq
                const decision = await boot(board)
                const state = await currentBootState(board)
                // No boot-state write: the stored event stays and is what the boot reports.
                const unchanged = state.seq === seqBefore
                if (unchanged) expect(decision.measured?.event, l.name).toBe(event)

                outcomes.push({
                    booted: decision.booted,
                    version: decision.version,
                    trial: decision.trial,
                    attempt: decision.measured?.attempt,
                    refused: decision.refused.map((r) => r.slot + ":" + r.check),
                    wrote: !unchanged,
                    event: unchanged ? "(stored)" : decision.measured?.event,
                    eventSlot: unchanged ? "(stored)" : decision.measured?.eventSlot,
                    state: {
                        ...state,
                        event: unchanged ? "(stored)" : state.event,
                        eventSlot: unchanged ? "(stored)" : state.eventSlot,
                    },
                    counter: await board.otp.readCounter(),
                })
            }
            expect(outcomes[1], l.name).toEqual(outcomes[0])
        }
    })
})

describe("GP-TM-16: power cuts during a rescue", () => {
    /** Boot states the broken board may hold when it is rescued. */
    const states: { name: string; arrange: (board: SimBoard) => Promise<void> }[] = [
        { name: "factory state", arrange: async () => undefined },
        {
            name: "slot a confirmed last",
            arrange: async (b) => {
                const part = b.flash.partition(PARTITION_BOOT_STATE)
                const stored = await readBootState(b.crypto, part)
                await writeBootState(b.crypto, part, stored, {
                    seq: 0,
                    active: "a",
                    pending: null,
                    attempts: 0,
                    event: "confirmed",
                    eventSlot: "a",
                })
            },
        },
        { name: "b pending", arrange: async (b) => markPending(b, "b") },
    ]

    /**
     * The event a boot of the rescue image reports when the rescue's final boot-state record
     * did not land: what the stub makes of the state before it (slot a now verifies).
     */
    const eventWithoutRecord: Record<string, [BootEvent, SlotName | null]> = {
        "factory state": ["none", null],
        "slot a confirmed last": ["none", null],
        "b pending": ["pending-refused", "b"],
    }

    it("GP-TM-16: a power cut at every flash operation of a rescue (torn writes: none, prefix, garbage) leaves the board in recovery or booting the rescue image, never anything else", async () => {
        let cuts = 0
        let rescued = 0
        let recovering = 0
        let withEvent = 0
        let withoutRecord = 0
        for (const state of states) {
            for (let after = 0; ; after++) {
                let cutThisOp = false
                for (const tear of TEARS) {
                    for (const seed of [1, 2]) {
                        const board = await brokenBoard({ lock: true })
                        await state.arrange(board)
                        board.button.press()
                        const step = (b: SimBoard) => rescue(b, bootConfig(b), rescueImage)

                        const result = await cutAndRestart(board, step, after, tear, seed)
                        const decision = await boot(result.board)

                        const where = `${state.name}, cut after ${after} ops, ${tear}, seed ${seed}`
                        if (result.cut) cuts++
                        cutThisOp = cutThisOp || result.cut
                        expect(await result.board.otp.readCounter(), where).toBe(OTP_COUNTER)
                        if (decision.recovery) {
                            recovering++
                            expect(await attempt(result.board, rescueImage), where).toBe("rescued")
                            const next = await boot(result.board)
                            expect(next.version, where).toBe("3.0.0")
                            expect(next.measured?.event, where).toBe("rescued")
                        } else {
                            rescued++
                            expect(decision.booted, where).toBe("a")
                            expect(decision.version, where).toBe("3.0.0")
                            expect(await result.board.otp.readCounter(), where).toBe(OTP_COUNTER)
                            // The final record landed (event rescued), or the cut came after
                            // slot a verified and before it: the previous state's event then.
                            const event = [decision.measured?.event, decision.measured?.eventSlot]
                            if (!result.cut) expect(event, where).toEqual(["rescued", "a"])
                            if (event[0] === "rescued") withEvent++
                            else {
                                withoutRecord++
                                expect(event, where).toEqual(eventWithoutRecord[state.name])
                            }
                        }
                    }
                }
                if (!cutThisOp) break
            }
        }
        expect(cuts).toBeGreaterThan(30)
        expect(rescued).toBeGreaterThan(0)
        expect(recovering).toBeGreaterThan(0)
        expect(withEvent).toBeGreaterThan(0)
        expect(withoutRecord).toBeGreaterThan(0)
    })
})

describe("bulwark sim rescue", () => {
    let root: string
    let pub: string
    let profile: string
    let rescueFile: string
    let badFile: string

    beforeAll(() => {
        root = mkdtempSync(join(tmpdir(), "bulwark-rescue-cli-"))
        pub = join(root, "release.pub")
        writeFileSync(pub, publicKeyFileText(publicPart(releaseKey)))
        profile = join(root, "profile.json")
        writeFileSync(profile, JSON.stringify(testProfileJson()))
        rescueFile = join(root, "rescue.img")
        writeFileSync(rescueFile, rescueImage)
        badFile = join(root, "bad.img")
        writeFileSync(badFile, tampered(rescueImage, HEADER_SIZE + 100))
    })

    /** A device made with the CLI, `slotA` in slot a through the debug port, then locked. */
    async function device(name: string, slotA: Buffer, lock: boolean): Promise<string> {
        const dir = join(root, name)
        const image = join(root, name + "-a.img")
        writeFileSync(image, slotA)
        const made = await runCli([
            "sim", "new", "--dir", dir, "--class", CLASS, "--trust", pub,
            "--counter", String(OTP_COUNTER), "--profile", profile, "--json",
        ])
        expect(made.code).toBe(0)
        expect((await runCli(["sim", "flash", "--dir", dir, "--slot", "a", "--image", image])).code)
            .toBe(0)
        if (lock) expect((await runCli(["sim", "lock", "--dir", dir, "--json"])).code).toBe(0)
        return dir
    }

    it("GP-TM-33: rescues a locked board in recovery (exit 0) while sim flash stays refused", async () => {
        const dir = await device("locked", tampered(v2, HEADER_SIZE + 10), true)

        const flashed = await runCli([
            "sim", "flash", "--dir", dir, "--slot", "a", "--image", rescueFile, "--json",
        ])
        const result = await runCli([
            "sim", "rescue", "--dir", dir, "--image", rescueFile, "--hold-button", "--json",
        ])
        const booted = await runCli(["sim", "boot", "--dir", dir, "--json"])

        expect(flashed.code).toBe(1)
        expect(flashed.json.check).toBe("debug-disabled")
        expect(result.code).toBe(0)
        expect(result.json).toMatchObject({
            ok: true,
            slot: "a",
            version: "3.0.0",
            securityCounter: 3,
        })
        expect(result.json.digest).toMatch(/^[0-9a-f]{64}$/)
        expect(booted.code).toBe(0)
        expect(booted.json.booted).toBe("a")
        expect(booted.json.measured.digest).toBe(result.json.digest)
    })

    it("GP-TM-16: exits 1 naming the check for no button, a bootable board and a tampered image", async () => {
        const broken = await device("refused", tampered(v2, HEADER_SIZE + 10), true)
        const bootable = await device("bootable", v2, true)

        const held = (dir: string, image: string) =>
            runCli(["sim", "rescue", "--dir", dir, "--image", image, "--hold-button", "--json"])

        const noButton = await runCli([
            "sim", "rescue", "--dir", broken, "--image", rescueFile, "--json",
        ])
        const bad = await held(broken, badFile)
        const replace = await held(bootable, rescueFile)
        const still = await runCli(["sim", "boot", "--dir", broken, "--json"])

        expect([noButton.code, bad.code, replace.code]).toEqual([1, 1, 1])
        expect(noButton.json).toMatchObject({ ok: false, check: "presence" })
        expect(bad.json).toMatchObject({ ok: false, check: "image:digest" })
        expect(replace.json).toMatchObject({ ok: false, check: "not-in-recovery" })
        expect(still.json.recovery).toBe(true)
    })

    it("exits 2 on bad usage and unreadable input", async () => {
        const dir = await device("usage", tampered(v2, HEADER_SIZE + 10), false)

        const codes = [
            await runCli(["sim", "rescue", "--dir", dir, "--hold-button"]),
            await runCli(["sim", "rescue", "--image", rescueFile]),
            await runCli(["sim", "rescue", "--dir", dir, "--image", join(root, "missing.img")]),
            await runCli(["sim", "rescue", "--dir", join(root, "nodev"), "--image", rescueFile]),
            await runCli(["sim", "rescue", "--dir", dir, "--image", rescueFile, "stray"]),
            await runCli(["sim", "rescue", "--dir", dir, "--image", rescueFile, "--slot", "b"]),
        ].map((r) => r.code)

        expect(codes).toEqual([2, 2, 2, 2, 2, 2])
    })
})
