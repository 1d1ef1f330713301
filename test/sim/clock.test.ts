/**
 * Virtual time, the watchdog and resets of the simulated board: timers fire in order as a
 * test advances the clock, a watchdog that is not fed resets the board (GP-TM-16
 * self-repair of a hung application), and the reset reason survives the reboot.
 */

import { afterAll, describe, expect, it } from "vitest"
import { RealClock, VirtualClock } from "../../sim/clock"
import { RebootSignal } from "../../sim/power"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"

afterAll(cleanupTestBoards)

describe("virtual clock", () => {
    it("starts at 0 and moves only when advanced", async () => {
        const clock = new VirtualClock()

        const before = clock.monotonicMs()
        await clock.advance(250)

        expect(before).toBe(0)
        expect(clock.monotonicMs()).toBe(250)
    })

    it("resolves a sleep only once the clock reaches its due time", async () => {
        const clock = new VirtualClock()
        let woke = false
        void clock.sleep(100).then(() => {
            woke = true
        })

        await clock.advance(99)
        const early = woke
        await clock.advance(1)

        expect(early).toBe(false)
        expect(woke).toBe(true)
    })

    it("runs a loop sleeping 100 ms ten times in advance(1000), each at its own time", async () => {
        const clock = new VirtualClock()
        const wakes: number[] = []
        const loop = async () => {
            for (;;) {
                await clock.sleep(100)
                wakes.push(clock.monotonicMs())
            }
        }
        void loop()

        await clock.advance(1000)

        expect(wakes).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    })

    it("fires timers in order of due time, whatever order they were set in", async () => {
        const clock = new VirtualClock()
        const order: string[] = []
        void clock.sleep(300).then(() => order.push("c"))
        void clock.sleep(100).then(() => order.push("a"))
        void clock.sleep(200).then(() => order.push("b"))

        await clock.advance(1000)

        expect(order).toEqual(["a", "b", "c"])
        expect(clock.pendingTimers()).toBe(0)
    })

    it("keeps wall time unknown until set, then moves it with the clock", async () => {
        const clock = new VirtualClock()
        const unknown = clock.wallTime()

        clock.setWallTime(1_700_000_000)
        await clock.advance(2500)

        expect(unknown).toBeNull()
        expect(clock.wallTime()).toBe(1_700_000_002)
    })

    it("a sleep of 0 ms resolves without an advance", async () => {
        const clock = new VirtualClock()

        await clock.sleep(0)

        expect(clock.monotonicMs()).toBe(0)
    })

    it("the real clock sleeps in host time and knows the wall time", async () => {
        const clock = new RealClock()

        await clock.sleep(2)

        expect(clock.monotonicMs()).toBeGreaterThanOrEqual(1)
        expect(clock.wallTime()).toBeGreaterThan(1_600_000_000)
    })
})

describe("watchdog and reset", () => {
    it("GP-TM-16: a watchdog not fed in time resets the board, reason \"watchdog\"", async () => {
        const board = await makeTestBoard()
        const seen: string[] = []
        board.onReset((reason) => seen.push(reason))
        await board.watchdog.start(1000)

        await board.advance(999)
        const stateBefore = board.powerState()
        await board.advance(1)

        expect(stateBefore).toBe("on")
        expect(board.powerState()).toBe("reset")
        expect(seen).toEqual(["watchdog"])
        expect(await board.resetRequested).toBe("watchdog")
        await expect(board.otp.readCounter()).rejects.toBeInstanceOf(RebootSignal)
        const next = await board.powerCycle()
        expect(next.reset.lastReason()).toBe("watchdog")
    })

    it("GP-TM-16: a watchdog fed in time never resets the board", async () => {
        const board = await makeTestBoard()
        const seen: string[] = []
        board.onReset((reason) => seen.push(reason))
        await board.watchdog.start(1000)
        const feeder = async () => {
            for (;;) {
                await board.clock.sleep(400)
                board.watchdog.feed()
            }
        }
        void feeder()

        await board.advance(60_000)

        expect(seen).toEqual([])
        expect(board.powerState()).toBe("on")
    })

    it("GP-TM-16: an app that stops feeding is reset one timeout after its last feed", async () => {
        const board = await makeTestBoard()
        await board.watchdog.start(1000)
        let feeds = 3
        const app = async () => {
            while (feeds > 0) {
                await board.clock.sleep(500)
                board.watchdog.feed()
                feeds--
            }
        }
        void app()
        let resetAt = -1
        board.onReset(() => {
            resetAt = board.clock.monotonicMs()
        })

        await board.advance(10_000)

        expect(resetAt).toBe(2500)
    })

    it("a feed due at the very instant of the deadline still counts", async () => {
        const board = await makeTestBoard()
        await board.watchdog.start(1000)
        void board.clock.sleep(1000).then(() => board.watchdog.feed())

        await board.advance(1500)

        expect(board.powerState()).toBe("on")
    })

    it("a fresh board starts with reason \"power-on\"", async () => {
        const board = await makeTestBoard()

        expect(board.reset.lastReason()).toBe("power-on")
    })

    it("reboot keeps its reason for the next boot only, and ends the run", async () => {
        const board = await makeTestBoard()

        await expect(board.reset.reboot("update")).rejects.toBeInstanceOf(RebootSignal)
        await expect(board.flash.partition("prefs").read(0, 4)).rejects.toBeInstanceOf(RebootSignal)
        const second = await board.powerCycle()
        const third = await second.powerCycle()

        expect(await board.resetRequested).toBe("update")
        expect(second.reset.lastReason()).toBe("update")
        expect(third.reset.lastReason()).toBe("power-on")
    })

    it("each boot starts its monotonic clock at 0 with the wall time unknown", async () => {
        const board = await makeTestBoard()
        await board.advance(5000)

        const next = await board.powerCycle()

        expect(next.clock.monotonicMs()).toBe(0)
        expect(next.clock.wallTime()).toBeNull()
    })

    it("a sleep of a run that was reset never resolves", async () => {
        const board = await makeTestBoard()
        let woke = false
        void board.clock.sleep(100).then(() => {
            woke = true
        })

        await expect(board.reset.reboot("software")).rejects.toBeInstanceOf(RebootSignal)
        await board.advance(1000)

        expect(woke).toBe(false)
    })
})
