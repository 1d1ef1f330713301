/**
 * SimBoard as a whole: a device directory that is created once, refuses to be created over,
 * fails with a typed error when missing or corrupt, keeps its profile, and takes factory
 * writes through a debug port that the OTP fuse closes (GP-TM-33).
 */

import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { requireCapability } from "../../hal/board"
import { MqttTransport } from "../../hal/mqtt"
import { ProfileError } from "../../boot/profile"
import { SimBoard, SimBoardError } from "../../sim/board"
import { cleanupTestBoards, makeTestBoard, testProfileJson } from "../../sim/testing"

const scratch: string[] = []

afterAll(() => {
    cleanupTestBoards()
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

function scratchDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-board-test-"))
    scratch.push(dir)
    return dir
}

async function boardCheck(promise: Promise<unknown>): Promise<string> {
    try {
        await promise
    } catch (err) {
        if (err instanceof SimBoardError) return err.check
        throw err
    }
    return "ok"
}

describe("sim board directory", () => {
    it("is a Board of target \"sim\" with every capability the sim models", async () => {
        const board = await makeTestBoard()

        expect(board.target).toBe("sim")
        expect(requireCapability(board.flash, "flash")).toBe(board.flash)
        expect(requireCapability(board.otp, "otp")).toBe(board.otp)
        expect(requireCapability(board.secureElement, "secure element")).toBe(board.secureElement)
        expect(board.rng.cryptographic).toBe(true)
        expect(board.crypto.sha256([Buffer.from("abc")]).toString("hex")).toMatch(/^ba7816bf/)
    })

    it("keeps the profile and the overriding device class in board.json", async () => {
        const dir = join(scratchDir(), "dev")

        const board = await SimBoard.create(dir, {
            profile: testProfileJson(),
            deviceClass: "acme-thermostat",
            trust: [],
        })
        const reopened = await board.powerCycle()

        expect(reopened.profile.deviceClass).toBe("acme-thermostat")
        expect(reopened.profile.flash.partitions.map((p) => p.name)).toContain("audit")
        const stored = JSON.parse(readFileSync(join(dir, "board.json"), "utf8"))
        expect(stored.profile.deviceClass).toBe("acme-thermostat")
    })

    it("refuses to create a device over a directory that is not empty", async () => {
        const board = await makeTestBoard()

        const check = await boardCheck(
            SimBoard.create(board.dir, { profile: testProfileJson(), trust: [] })
        )

        expect(check).toBe("exists")
    })

    it("refuses a bad profile with a ProfileError naming the field", async () => {
        const profile = { ...testProfileJson(), boot: { trialAttempts: 0, signaturePolicy: "x" } }

        const attempt = SimBoard.create(join(scratchDir(), "dev"), { profile, trust: [] })

        await expect(attempt).rejects.toBeInstanceOf(ProfileError)
        await expect(attempt).rejects.toMatchObject({ field: "boot.trialAttempts" })
    })

    it("reports a missing device directory as \"missing\"", async () => {
        expect(await boardCheck(SimBoard.open(join(scratchDir(), "nothing-here")))).toBe("missing")
    })

    it("reports corrupt state files as \"corrupt\"", async () => {
        const otp = await makeTestBoard()
        otp.close()
        writeFileSync(join(otp.dir, "otp.json"), "{ not json")
        const flash = await makeTestBoard()
        flash.close()
        truncateSync(join(flash.dir, "flash.bin"), 1000)
        const se = await makeTestBoard()
        se.close()
        writeFileSync(join(se.dir, "se.json"), JSON.stringify({ format: "other" }))
        const profile = await makeTestBoard()
        profile.close()
        const json = JSON.parse(readFileSync(join(profile.dir, "board.json"), "utf8"))
        json.profile.flash.sectorSize = 3
        writeFileSync(join(profile.dir, "board.json"), JSON.stringify(json))

        for (const board of [otp, flash, se, profile])
            expect(await boardCheck(SimBoard.open(board.dir))).toBe("corrupt")
    })

    it("keeps the tamper latch and the held button across a power cycle", async () => {
        const board = await makeTestBoard()
        board.tamper.trigger()
        board.button.press()

        const next = await board.powerCycle()

        expect(await next.tamper.triggered()).toBe(true)
        expect(await next.button.held()).toBe(true)
        next.tamper.clear()
        expect(await (await next.powerCycle()).tamper.triggered()).toBe(false)
    })

    it("attaches the MQTT transport factory at every power-on", async () => {
        const made: SimBoard[] = []
        const factory = (b: SimBoard): MqttTransport => {
            made.push(b)
            return {
                capabilities: () => ({ clientCertificate: true, caPinning: true, tls13: true }),
                connect: async () => {
                    throw new Error("not in this test")
                },
            }
        }
        const board = await makeTestBoard({ mqtt: factory })

        const next = await board.powerCycle()

        expect(made).toEqual([board, next])
        expect(next.mqtt?.capabilities().tls13).toBe(true)
    })
})

describe("sim board debug port", () => {
    it("debug port write: whole slot erased, image padded with 0xFF", async () => {
        const board = await makeTestBoard()
        const slot = board.flash.partition("slot-a")
        await slot.program(8192, Buffer.alloc(4, 0))

        await board.debugFlash("slot-a", Buffer.from("hello"))

        expect(await slot.read(0, 8)).toEqual(Buffer.from("hello\xff\xff\xff", "latin1"))
        expect(await slot.read(8192, 4)).toEqual(Buffer.alloc(4, 0xff))
    })

    it("GP-TM-33: refuses factory writes once the debug-disable fuse is burnt", async () => {
        const board = await makeTestBoard()
        await board.debugFlash("slot-a", Buffer.from("genuine"))
        await board.otp.burnLock("debug-disabled")

        const check = await boardCheck(board.debugFlash("slot-a", Buffer.from("attacker")))

        expect(check).toBe("locked")
        expect(await board.flash.partition("slot-a").read(0, 7)).toEqual(Buffer.from("genuine"))
    })

    it("refuses an image larger than the partition before erasing anything", async () => {
        const board = await makeTestBoard({ slotSize: 8192 })
        await board.debugFlash("slot-a", Buffer.from("keep"))

        const attempt = board.debugFlash("slot-a", Buffer.alloc(8193))

        await expect(attempt).rejects.toMatchObject({ code: "range" })
        expect(await board.flash.partition("slot-a").read(0, 4)).toEqual(Buffer.from("keep"))
    })
})
