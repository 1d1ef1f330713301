/**
 * The verified-boot stub's decisions: factory boot, trial boot with the attempt limit and
 * revert, confirm and the OTP counter, fallback and recovery (docs/boot.md).
 */

import { afterAll, describe, expect, it } from "vitest"

import { confirmRunningImage, currentBootState, markPending } from "../../boot/stub"
import { cleanupTestBoards } from "../../sim/testing"
import { generateReleaseKey } from "../../tools/keyfile"
import { boot, flashSlot, newBoard, signedImage } from "./helpers"

afterAll(cleanupTestBoards)

describe("boot stub", () => {
    it("GP-TM-03: boots the factory image in slot a after verifying it", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))

        const decision = await boot(board)

        expect(decision.booted).toBe("a")
        expect(decision.version).toBe("1.0.0")
        expect(decision.trial).toBe(false)
        expect(decision.measured?.keySlot).toBe(0)
        expect(decision.measured?.digest).toMatch(/^[0-9a-f]{64}$/)
    })

    it("GP-TM-18: an update that never confirms is reverted after the attempt limit", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        await flashSlot(board, "b", await signedImage("2.0.0", 2))
        await markPending(board, "b")

        const trials = []
        for (let i = 0; i < 3; i++) trials.push(await boot(board))
        const after = await boot(board)

        expect(trials.map((d) => [d.booted, d.trial, d.measured?.attempt])).toEqual([
            ["b", true, 1],
            ["b", true, 2],
            ["b", true, 3],
        ])
        expect(after.booted).toBe("a")
        expect(after.trial).toBe(false)
        expect(after.measured?.event).toBe("reverted")
        expect(after.measured?.eventSlot).toBe("b")
        expect(await board.otp.readCounter()).toBe(1)
    })

    it("GP-TM-06: a confirmed update stays, raises the OTP counter, and the old image never boots again", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        await flashSlot(board, "b", await signedImage("2.0.0", 2))
        await markPending(board, "b")
        const trial = await boot(board)

        await confirmRunningImage(board, trial.measured!)
        const next = await boot(board)
        await flashSlot(board, "b", Buffer.from("erased by an attacker"))
        const attack = await boot(board)

        expect(next.booted).toBe("b")
        expect(next.trial).toBe(false)
        expect(await board.otp.readCounter()).toBe(2)
        expect((await currentBootState(board)).active).toBe("b")
        expect(attack.booted).toBeNull()
        expect(attack.recovery).toBe(true)
        expect(attack.refused.find((r) => r.slot === "a")?.check).toBe("security-counter")
    })

    it("GP-TM-06: the OTP counter does not rise before confirm, nor on a fallback", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        await flashSlot(board, "b", await signedImage("3.0.0", 3))
        await markPending(board, "b")
        await boot(board)
        expect(await board.otp.readCounter()).toBe(1)

        await flashSlot(board, "a", Buffer.from("corrupted"))
        for (let i = 0; i < 3; i++) await boot(board)
        const fallback = await boot(board)

        expect(fallback.booted).toBe("b")
        expect(fallback.measured?.event).toBe("fallback")
        expect(await board.otp.readCounter()).toBe(1)
    })

    it("refuses to confirm an image that is not on trial", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        const decision = await boot(board)

        await expect(confirmRunningImage(board, decision.measured!)).rejects.toMatchObject({
            check: "confirm",
        })
        expect(await board.otp.readCounter()).toBe(1)
    })

    it("refuses to mark the confirmed slot as pending", async () => {
        const board = await newBoard()

        await expect(markPending(board, "a")).rejects.toMatchObject({ check: "pending" })
    })

    it("GP-TM-04: a pending image that fails verification is dropped and the active image boots", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        const forged = await signedImage("2.0.0", 2, { key: generateReleaseKey("p256") })
        await flashSlot(board, "b", forged)
        await markPending(board, "b")

        const decision = await boot(board)

        expect(decision.booted).toBe("a")
        expect(decision.refused).toEqual([expect.objectContaining({ slot: "b", check: "key-unknown" })])
        expect(decision.measured?.event).toBe("pending-refused")
        expect((await currentBootState(board)).pending).toBeNull()
    })

    it("GP-TM-16: falls back to the other valid slot when the active one is tampered", async () => {
        const board = await newBoard({ counter: 1 })
        const image = await signedImage("1.0.0", 1)
        await flashSlot(board, "b", await signedImage("1.0.1", 1))
        image[image.length - 100] ^= 0x01
        await flashSlot(board, "a", image)

        const decision = await boot(board)
        const again = await boot(board)

        expect(decision.booted).toBe("b")
        expect(decision.refused[0].slot).toBe("a")
        expect((await currentBootState(board)).active).toBe("b")
        expect(again.booted).toBe("b")
    })

    it("GP-TM-04: enters recovery and hands over nothing when no slot verifies", async () => {
        const board = await newBoard({ counter: 1 })
        const unsigned = Buffer.concat([Buffer.from("BWIM"), Buffer.alloc(400, 0x41)])
        await flashSlot(board, "a", unsigned)

        const decision = await boot(board, true)

        expect(decision.booted).toBeNull()
        expect(decision.recovery).toBe(true)
        expect(decision.payload).toBeNull()
        expect(decision.refused.map((r) => r.slot)).toEqual(["a", "b"])
        expect(decision.refused[1].check).toBe("empty")
    })

    it("GP-TM-01: an image signed by a key whose OTP slot is revoked never boots", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        await board.otp.revokeKeySlot(0)

        const decision = await boot(board)

        expect(decision.booted).toBeNull()
        expect(decision.refused[0].check).toBe("key-revoked")
    })

    it("GP-TM-06: an image for another device class or below the OTP counter never boots", async () => {
        const board = await newBoard({ counter: 2 })
        await flashSlot(board, "a", await signedImage("1.0.0", 1))
        await flashSlot(board, "b", await signedImage("2.0.0", 2, { deviceClass: "other-class" }))

        const decision = await boot(board)

        expect(decision.booted).toBeNull()
        expect(decision.refused.map((r) => r.check)).toEqual(["security-counter", "device-class"])
    })
})
