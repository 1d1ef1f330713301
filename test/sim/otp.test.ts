/**
 * The simulated OTP fuses are one-way: key slots burn once, revoke bits and lock fuses
 * never clear, and the anti-rollback counter only rises (GP-TM-01, GP-TM-06, GP-TM-33),
 * across power cycles too.
 */

import { afterAll, describe, expect, it } from "vitest"
import { OtpError } from "../../hal/errors"
import { OTP_COUNTER_MAX } from "../../hal/otp"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"

afterAll(cleanupTestBoards)

const DIGEST_A = Buffer.alloc(32, 0xa1)
const DIGEST_B = Buffer.alloc(32, 0xb2)

async function otpCode(promise: Promise<unknown>): Promise<string> {
    try {
        await promise
    } catch (err) {
        if (err instanceof OtpError) return err.code
        throw err
    }
    return "ok"
}

describe("sim OTP", () => {
    it("burns the factory trust anchors into slots 0..n-1 and leaves the rest blank", async () => {
        const board = await makeTestBoard({ trust: [DIGEST_A, DIGEST_B], counter: 3 })

        expect(await board.otp.readKeySlot(0)).toEqual({ digest: DIGEST_A, revoked: false })
        expect(await board.otp.readKeySlot(1)).toEqual({ digest: DIGEST_B, revoked: false })
        expect(await board.otp.readKeySlot(2)).toEqual({ digest: null, revoked: false })
        expect(await board.otp.readCounter()).toBe(3)
        expect(await board.otp.readLocks()).toEqual({ debugDisabled: false, keysLocked: false })
    })

    it("GP-TM-01: a burnt key slot cannot be burnt again", async () => {
        const board = await makeTestBoard({ trust: [DIGEST_A] })

        const code = await otpCode(board.otp.burnKeySlot(0, DIGEST_B))

        expect(code).toBe("burnt")
        expect((await board.otp.readKeySlot(0)).digest).toEqual(DIGEST_A)
    })

    it("GP-TM-01: no key slot can be burnt after keys-locked, revocation still works", async () => {
        const board = await makeTestBoard({ trust: [DIGEST_A] })
        await board.otp.burnLock("keys-locked")

        const code = await otpCode(board.otp.burnKeySlot(1, DIGEST_B))
        await board.otp.revokeKeySlot(0)

        expect(code).toBe("locked")
        expect(await board.otp.readKeySlot(1)).toEqual({ digest: null, revoked: false })
        expect((await board.otp.readKeySlot(0)).revoked).toBe(true)
    })

    it("refuses bad slot indexes and digests of the wrong length", async () => {
        const board = await makeTestBoard()

        expect(await otpCode(board.otp.burnKeySlot(3, DIGEST_A))).toBe("slot")
        expect(await otpCode(board.otp.readKeySlot(-1))).toBe("slot")
        expect(await otpCode(board.otp.burnKeySlot(0, Buffer.alloc(31)))).toBe("range")
        expect(await board.otp.readKeySlot(0)).toEqual({ digest: null, revoked: false })
    })

    it("revoking is idempotent and irreversible, across power cycles", async () => {
        const board = await makeTestBoard({ trust: [DIGEST_A] })
        await board.otp.revokeKeySlot(0)
        await board.otp.revokeKeySlot(0)

        const next = await board.powerCycle()

        expect(await next.otp.readKeySlot(0)).toEqual({ digest: DIGEST_A, revoked: true })
    })

    it("GP-TM-06: the anti-rollback counter only rises, also across a power cycle", async () => {
        const board = await makeTestBoard({ counter: 2 })

        await board.otp.raiseCounter(5)
        await board.otp.raiseCounter(4)
        await board.otp.raiseCounter(0)
        const next = await board.powerCycle()

        expect(await next.otp.readCounter()).toBe(5)
    })

    it("GP-TM-06: the counter cannot pass OTP_COUNTER_MAX or take a non-integer", async () => {
        const board = await makeTestBoard()

        expect(await otpCode(board.otp.raiseCounter(OTP_COUNTER_MAX + 1))).toBe("counter")
        expect(await otpCode(board.otp.raiseCounter(1.5))).toBe("counter")
        await board.otp.raiseCounter(OTP_COUNTER_MAX)

        expect(await board.otp.readCounter()).toBe(OTP_COUNTER_MAX)
    })

    it("GP-TM-33: lock fuses stay burnt after a power cycle", async () => {
        const board = await makeTestBoard()
        await board.otp.burnLock("debug-disabled")

        const next = await board.powerCycle()
        await next.otp.burnLock("debug-disabled")

        expect(await next.otp.readLocks()).toEqual({ debugDisabled: true, keysLocked: false })
    })

    it("returns copies: changing a read result does not change the fuses", async () => {
        const board = await makeTestBoard({ trust: [DIGEST_A] })

        const slot = await board.otp.readKeySlot(0)
        slot.digest![0] = 0
        slot.revoked = true

        expect(await board.otp.readKeySlot(0)).toEqual({ digest: DIGEST_A, revoked: false })
    })
})
