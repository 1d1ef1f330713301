/**
 * Power cut at every flash operation of every boot-state change, with the interrupted write
 * torn each way the sim can tear it: after each cut the board boots a valid image, and never
 * one it should not (GP-TM-06, GP-TM-16; docs/boot.md).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { BootDecision, confirmRunningImage, markPending } from "../../boot/stub"
import { PowerLoss } from "../../hal/errors"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards } from "../../sim/testing"
import { boot, cutAndRestart, flashSlot, newBoard, signedImage, Step, TEARS } from "./helpers"

afterAll(cleanupTestBoards)

const SEEDS = [1, 2]
/** More than any one state change needs (each costs one erase and one program). */
const MAX_OPS = 4

let v1: Buffer
let v2: Buffer
beforeAll(async () => {
    v1 = await signedImage("1.0.0", 1)
    v2 = await signedImage("2.0.0", 2)
})

interface Scenario {
    name: string
    /** Brings a fresh board (v1 in a, v2 in b, OTP counter 1) to the state before the step. */
    arrange: (board: SimBoard) => Promise<void>
    step: Step
    /** What must hold of the boot after the cut, besides booting a valid image. */
    invariant?: (decision: BootDecision, counter: number, where: string) => void
}

/** Once the counter is 2 only v2 (slot b) may run; a confirmed v2 always raised it. */
function confirmInvariant(decision: BootDecision, counter: number, where: string): void {
    if (counter >= 2) expect(decision.booted, where).toBe("b")
    if (decision.booted === "b" && !decision.trial) expect(counter, where).toBe(2)
}

async function trialBoot(board: SimBoard): Promise<BootDecision> {
    await markPending(board, "b")
    return boot(board)
}

const scenarios: Scenario[] = [
    { name: "mark pending", arrange: async () => undefined, step: (b) => markPending(b, "b") },
    {
        name: "trial boot (attempt counted)",
        arrange: async (b) => markPending(b, "b"),
        step: (b) => boot(b),
    },
    {
        name: "revert after the attempt limit",
        arrange: async (b) => {
            await markPending(b, "b")
            for (let i = 0; i < 3; i++) await boot(b)
        },
        step: (b) => boot(b),
    },
    {
        name: "confirm",
        arrange: async () => undefined,
        step: async (b) => {
            const trial = await trialBoot(b)
            await confirmRunningImage(b, trial.measured!)
        },
        invariant: confirmInvariant,
    },
    {
        name: "fallback from a tampered active slot",
        arrange: async (b) => {
            const bad = Buffer.from(v1)
            bad[200] ^= 0x80
            await flashSlot(b, "a", bad)
        },
        step: (b) => boot(b),
        invariant: (decision, counter, where) => {
            expect(decision.booted, where).toBe("b")
            expect(counter, where).toBe(1)
        },
    },
    {
        name: "pending image refused",
        arrange: async (b) => {
            const bad = Buffer.from(v2)
            bad[bad.length - 10] ^= 0x01
            await flashSlot(b, "b", bad)
            await markPending(b, "b")
        },
        step: (b) => boot(b),
    },
]

async function freshBoard(scenario: Scenario): Promise<SimBoard> {
    const board = await newBoard({ counter: 1 })
    await flashSlot(board, "a", v1)
    await flashSlot(board, "b", v2)
    await scenario.arrange(board)
    return board
}

describe("GP-TM-16: power cut at every flash operation of every boot-state change", () => {
    for (const scenario of scenarios) {
        it(`GP-TM-06: ${scenario.name}: always boots a valid image, never the one it should not`, async () => {
            let cuts = 0
            for (let after = 0; after < MAX_OPS; after++) {
                for (const tear of TEARS) {
                    for (const seed of SEEDS) {
                        const board = await freshBoard(scenario)
                        const result = await cutAndRestart(board, scenario.step, after, tear, seed)
                        if (result.cut) cuts++

                        const decision = await boot(result.board)
                        const counter = await result.board.otp.readCounter()

                        const where = `${scenario.name}, cut after ${after} ops, tear ${tear}`
                        expect(decision.booted, where).not.toBeNull()
                        expect(decision.measured!.securityCounter, where).toBeGreaterThanOrEqual(counter)
                        expect(counter, where).toBeLessThanOrEqual(2)
                        const invariant = scenario.invariant ?? confirmInvariant
                        invariant(decision, counter, where)
                    }
                }
            }
            expect(cuts).toBeGreaterThan(0)
        })
    }

    it("GP-TM-06: a cut between the confirm record and the counter burn is completed at the next boot", async () => {
        const board = await newBoard({ counter: 1 })
        await flashSlot(board, "a", v1)
        await flashSlot(board, "b", v2)
        const trial = await trialBoot(board)
        const failingOtp = Object.create(board.otp)
        failingOtp.raiseCounter = async () => {
            throw new PowerLoss("cut before the counter burn")
        }
        const cutBoard = Object.create(board, { otp: { value: failingOtp } })

        await expect(confirmRunningImage(cutBoard, trial.measured!)).rejects.toBeInstanceOf(PowerLoss)
        const counterAfterCut = await board.otp.readCounter()
        const next = await boot(await board.powerCycle())

        expect(counterAfterCut).toBe(1)
        expect(next.booted).toBe("b")
        expect(next.trial).toBe(false)
        expect(await (await board.powerCycle()).otp.readCounter()).toBe(2)
    })
})
