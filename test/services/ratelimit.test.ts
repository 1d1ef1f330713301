/**
 * Rate limiting on the HAL clock (GP-TM-46): token buckets admit a burst then the
 * configured rate, keep sources apart without letting rotated names mint fresh buckets,
 * and under a flood of 10,000 commands the device's periodic work keeps its schedule while
 * the audit log gets one summary, not one record per drop.
 */

import { afterAll, describe, expect, it } from "vitest"
import { recordRateSummary, startSecurityServices } from "../../src/admin/service"
import { publishToken, PUBLISH_WAIT_MS } from "../../src/app-audit"
import { RateLimiter, TokenBucket } from "../../src/ratelimit"
import { VirtualClock } from "../../sim/clock"
import { cleanupTestBoards } from "../../sim/testing"
import { giveIdentity, smallSectorBoard } from "./support"

afterAll(() => cleanupTestBoards())

const LIMITS = {
    commands: { ratePerSec: 10, burst: 20 },
    publishes: { ratePerSec: 20, burst: 50 },
    logins: { ratePerSec: 1, burst: 3 },
    updates: { ratePerSec: 1, burst: 2 },
}

describe("token buckets", () => {
    it("GP-TM-46: admits the burst, then the rate, as the clock moves", async () => {
        const bucket = new TokenBucket({ ratePerSec: 10, burst: 5 }, 0)

        const burst = [0, 1, 2, 3, 4, 5].map(() => bucket.take(0))
        const at99 = bucket.take(99)
        const at100 = bucket.take(100)
        const wait = bucket.waitMs(100)

        expect(burst).toEqual([true, true, true, true, true, false])
        expect(at99).toBe(false)
        expect(at100).toBe(true)
        expect(wait).toBe(100)
    })

    it("GP-TM-46: gives each command source its own bucket; extra sources share one", async () => {
        const clock = new VirtualClock()
        const limiter = new RateLimiter(LIMITS, clock, { maxSources: 2 })

        const a = Array.from({ length: 25 }, () => limiter.allow("commands", "operator-a"))
        const b = Array.from({ length: 25 }, () => limiter.allow("commands", "operator-b"))
        const rotated = Array.from({ length: 50 }, (_, i) => limiter.allow("commands", "x" + i))

        expect(a.filter(Boolean)).toHaveLength(20)
        expect(b.filter(Boolean)).toHaveLength(20)
        expect(rotated.filter(Boolean)).toHaveLength(20)
        expect(limiter.dropped("commands")).toBe(5 + 5 + 30)
    })

    it("GP-TM-46: limits publishes, logins and updates from the profile", async () => {
        const clock = new VirtualClock()
        const limiter = new RateLimiter(LIMITS, clock)

        const logins = Array.from({ length: 5 }, () => limiter.allow("logins"))
        const updates = Array.from({ length: 5 }, () => limiter.allow("updates"))
        const publishes = Array.from({ length: 60 }, () => limiter.allow("publishes"))
        await clock.advance(1000)
        const loginLater = limiter.allow("logins")

        expect(logins.filter(Boolean)).toHaveLength(3)
        expect(updates.filter(Boolean)).toHaveLength(2)
        expect(publishes.filter(Boolean)).toHaveLength(50)
        expect(loginLater).toBe(true)
    })
})

describe("GP-TM-46: a flood of inbound commands", () => {
    it(
        "GP-TM-46: 10,000 commands are processed only up to the rate; the loop keeps time",
        async () => {
            const board = await smallSectorBoard(8)
            await giveIdentity(board)
            const services = await startSecurityServices(board, board.profile)
            const clock = board.clock as VirtualClock
            const inbound: string[] = []
            const ticks: number[] = []
            let processed = 0
            let running = true

            // The device's superloop: one inbound message per turn, then the periodic work.
            // An admitted command costs 20 ms of work; a dropped one costs nothing.
            const loop = (async () => {
                let nextTick = 1000
                while (running) {
                    const source = inbound.shift()
                    if (source === undefined) await clock.sleep(10)
                    else if (services.limiter.allow("commands", source)) {
                        processed++
                        await clock.sleep(20)
                    }
                    if (clock.monotonicMs() >= nextTick) {
                        ticks.push(clock.monotonicMs())
                        await recordRateSummary(services)
                        nextTick += 1000
                    }
                }
            })()
            for (let second = 0; second < 10; second++) {
                for (let i = 0; i < 1000; i++) inbound.push("operator-" + (i % 3))
                await clock.advance(1000)
            }
            await clock.advance(60000)
            await recordRateSummary(services, true)
            running = false
            await clock.advance(100)
            await loop
            const summaries: string[] = []
            await services.audit.forEach(0, async (r) => {
                if (r.event === "rate-limit") summaries.push(r.detail)
            })

            // Three sources, each at most its burst of 20 plus 10 per second for 10 s.
            expect(processed).toBeLessThanOrEqual(3 * (20 + 10 * 10))
            expect(processed).toBeGreaterThan(0)
            expect(services.limiter.dropped("commands")).toBe(10000 - processed)
            expect(ticks.length).toBeGreaterThanOrEqual(10)
            for (let i = 0; i < 10; i++) expect(ticks[i] - (i + 1) * 1000).toBeLessThanOrEqual(20)
            expect(summaries.length).toBeGreaterThanOrEqual(1)
            expect(summaries.length).toBeLessThanOrEqual(2)
            expect(summaries[0]).toMatch(/^commands=\d+ publishes=0 logins=0 updates=0 /)
        }
    )
})

describe("publishes that wait for a token", () => {
    it("GP-TM-46: three protocol publishes waiting on an empty bucket each get a token in turn",
        async () => {
            const clock = new VirtualClock()
            const limiter = new RateLimiter(LIMITS, clock)
            while (limiter.allow("publishes"));
            const before = limiter.dropped("publishes")

            const waiting = [0, 1, 2].map(() => publishToken(limiter, clock, true))
            await clock.advance(200)
            const results = await Promise.all(waiting)

            expect(results).toEqual([true, true, true])
            expect(limiter.dropped("publishes")).toBe(before)
        })

    it("GP-TM-46: a publish that would wait longer than the bound is dropped and counted",
        async () => {
            const slow = { ...LIMITS, publishes: { ratePerSec: 0.25, burst: 1 } }
            const clock = new VirtualClock()
            const limiter = new RateLimiter(slow, clock)
            expect(limiter.allow("publishes")).toBe(true)

            const result = await publishToken(limiter, clock, true)

            expect(1000 / 0.25).toBeGreaterThan(PUBLISH_WAIT_MS)
            expect(result).toBe(false)
            expect(limiter.dropped("publishes")).toBe(1)
        })
})
