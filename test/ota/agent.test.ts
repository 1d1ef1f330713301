/**
 * The update agent on a simulated board, with an in-memory link standing in for MQTT:
 * v1 to v2 through download, verification, trial boot and confirm; every refusal leaves v1
 * running and is reported with its check; rollback of an unconfirmed trial; the maintenance
 * window; user preferences untouched. GP-TM-05 (no unauthenticated or outdated software),
 * GP-TM-06 (back to the known-good image), GP-TM-07 (trust anchors), GP-TM-18, 19, 20.
 */

import { afterAll, describe, expect, it } from "vitest"

import { confirmRunningImage, currentBootState } from "../../boot/stub"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards } from "../../sim/testing"
import {
    boot,
    keyA,
    keyB,
    keyStranger,
    Link,
    makeDevice,
    makeImage,
    newAgent,
    offerFor,
    serve,
    step,
} from "./helpers"

afterAll(() => cleanupTestBoards())

/** Offers `image` to a device running v1 and serves it; returns the run's end and link. */
async function offerAndServe(board: SimBoard, offer: Buffer, image: Buffer, alter?: any) {
    const decision = await boot(board)
    const link = new Link()
    const agent = newAgent(board, decision, link)
    await agent.start()
    const first = await step(() => agent.handleOffer(offer))
    const end = first === "idle" ? await serve(agent, link, image, { alter: alter }) : first
    return { end, link, agent }
}

/** After a refusal: the next boot runs v1 from slot a, nothing pending. */
async function expectV1Runs(board: SimBoard): Promise<void> {
    const next = await board.powerCycle()
    const decision = await boot(next)
    expect(decision.version).toBe("1.0.0")
    expect(decision.trial).toBe(false)
    expect((await currentBootState(next)).pending).toBeNull()
    next.close()
}

describe("update agent: v1 to v2", () => {
    it("GP-TM-18: downloads, verifies, boots v2 on trial, confirms and raises the OTP counter", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })

        const { end, link } = await offerAndServe(board, await offerFor(v2, 10), v2)

        expect(end).toBe("reboot")
        expect(link.states()).toEqual(expect.arrayContaining(["accepted", "verifying", "installing"]))
        const next = await board.powerCycle()
        const decision = await boot(next)
        expect(decision.version).toBe("2.0.0")
        expect(decision.trial).toBe(true)
        const link2 = new Link()
        const agent2 = newAgent(next, decision, link2)
        await agent2.start()
        expect(agent2.phase()).toBe("trial")
        await confirmRunningImage(next, decision.measured!)
        await agent2.confirmed()
        expect(link2.states()).toEqual(["trial", "confirmed"])
        expect(link2.last().version).toBe("2.0.0")
        expect(await next.otp.readCounter()).toBe(2)
        next.close()
    })

    it("GP-TM-05: once v2 is confirmed, v1 never boots again, not even as a fallback", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        await offerAndServe(board, await offerFor(v2, 10), v2)
        let dev = await board.powerCycle()
        const trial = await boot(dev)
        await confirmRunningImage(dev, trial.measured!)

        await dev.debugFlash("slot-b", Buffer.from("v2 destroyed"))
        dev = await dev.powerCycle()
        const decision = await boot(dev)

        expect(decision.booted).toBeNull()
        expect(decision.recovery).toBe(true)
        expect(decision.refused.map((r) => r.slot + ":" + r.check)).toContain("a:security-counter")
        dev.close()
    })

    it("GP-TM-20: user preferences and security settings are unchanged by an update", async () => {
        const board = await makeDevice()
        const prefs = board.flash.partition("prefs")
        const settings = board.flash.partition("secure-settings")
        await prefs.program(0, Buffer.from("lang=fr;units=metric;theme=1"))
        await settings.program(4096, Buffer.from("pin-hash=0123456789abcdef..."))
        const before = [board.flash.peek("prefs", 0, 8192), board.flash.peek("secure-settings", 0, 8192)]
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })

        await offerAndServe(board, await offerFor(v2, 10), v2)
        const next = await board.powerCycle()
        const decision = await boot(next)
        await confirmRunningImage(next, decision.measured!)
        const agent = newAgent(next, decision, new Link())
        await agent.start()
        await agent.confirmed()

        expect(next.flash.peek("prefs", 0, 8192)).toEqual(before[0])
        expect(next.flash.peek("secure-settings", 0, 8192)).toEqual(before[1])
        next.close()
    })

    it("GP-TM-06: a v2 never confirmed is reverted after the trial attempts and the rollback is reported", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        await offerAndServe(board, await offerFor(v2, 10), v2)

        let dev = board
        let decision = await boot((dev = await dev.powerCycle()))
        for (let attempt = 1; decision.trial; attempt++) {
            expect(decision.version).toBe("2.0.0")
            expect(decision.measured!.attempt).toBe(attempt)
            decision = await boot((dev = await dev.powerCycle()))
        }
        const link = new Link()
        await newAgent(dev, decision, link).start()

        expect(decision.version).toBe("1.0.0")
        expect(link.states()).toEqual(["reverted:reverted"])
        expect(link.last().version).toBe("2.0.0")
        expect(await dev.otp.readCounter()).toBe(1)
        dev.close()
    })

    it("resumes a download after a reboot at the first sector not known whole", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: Buffer.alloc(20000, 7) })
        const decision = await boot(board)
        const link = new Link()
        const agent = newAgent(board, decision, link)
        await agent.start()
        await agent.handleOffer(await offerFor(v2, 10))
        await serve(agent, link, v2, { chunks: 10 })
        expect(agent.progress()).toBe(10240)

        const next = await board.powerCycle()
        const link2 = new Link()
        const agent2 = newAgent(next, await boot(next), link2)
        await agent2.start()

        expect(agent2.phase()).toBe("downloading")
        expect(link2.requests[0].readUInt32BE(8)).toBe(8192)
        expect(await serve(agent2, link2, v2)).toBe("reboot")
        const after = await boot(await next.powerCycle())
        expect(after.version).toBe("2.0.0")
    })
})

describe("update agent: refusals leave v1 running and say why", () => {
    const cases: [string, string, () => Promise<{ offer: Buffer; image: Buffer; alter?: any; revoke?: number; counter?: number }>][] = [
        ["GP-TM-18: an unsigned offer", "unsigned", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2 })
            const offer = await offerFor(image, 10)
            return { offer: offer.subarray(0, offer.readUInt16BE(6)), image }
        }],
        ["GP-TM-18: a wrongly signed offer", "signature", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2 })
            const offer = await offerFor(image, 10)
            offer[offer.length - 3] ^= 0x80
            return { offer, image }
        }],
        ["GP-TM-07: an offer signed with a key the device does not trust", "key-unknown", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2, key: keyStranger })
            return { offer: await offerFor(image, 10, keyStranger), image }
        }],
        ["GP-TM-07: an image signed with the wrong key under a genuine offer", "key-unknown", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2, key: keyStranger })
            return { offer: await offerFor(image, 10), image }
        }],
        ["GP-TM-07: an offer signed with a revoked key", "key-revoked", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2 })
            return { offer: await offerFor(image, 10), image, revoke: 0 }
        }],
        ["GP-TM-05: an offer for another device class", "device-class", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2, deviceClass: "other-class" })
            return { offer: await offerFor(image, 10), image }
        }],
        ["GP-TM-05: a downgrade", "downgrade", async () => {
            const image = await makeImage({ version: "0.9.0", counter: 1 })
            return { offer: await offerFor(image, 10), image }
        }],
        ["GP-TM-05: an image below the OTP counter", "security-counter", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 1 })
            return { offer: await offerFor(image, 10), image, counter: 2 }
        }],
        ["GP-TM-18: an image larger than the slot", "oversized", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2, payload: Buffer.alloc(40000) })
            return { offer: await offerFor(image, 10), image }
        }],
        ["GP-TM-05: a chunk tampered with in transit", "digest", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2 })
            const alter = (offset: number, data: Buffer) => {
                if (offset === 2048) data[100] ^= 0x01
                return data
            }
            return { offer: await offerFor(image, 10), image, alter }
        }],
        ["GP-TM-05: an image cut short by the publisher", "truncated", async () => {
            const image = await makeImage({ version: "2.0.0", counter: 2 })
            const alter = (offset: number, data: Buffer) => (offset >= 4096 ? data.subarray(0, 10) : data)
            return { offer: await offerFor(image, 10), image, alter }
        }],
        ["GP-TM-05: a truncated image under a signed offer", "payload-size", async () => {
            const full = await makeImage({ version: "2.0.0", counter: 2 })
            const image = full.subarray(0, 3000)
            return { offer: await offerFor(image, 10), image }
        }],
    ]

    for (const [name, check, make] of cases) {
        it(name + " is refused (" + check + ")", async () => {
            const made = await make()
            const board = await makeDevice({ v1: await makeImage({ version: "1.0.0", counter: made.counter ?? 1, key: keyB }), counter: made.counter })
            if (made.revoke !== undefined) await board.otp.revokeKeySlot(made.revoke)

            const { end, link } = await offerAndServe(board, made.offer, made.image, made.alter)

            expect(end).toBe("idle")
            expect(link.last().state).toBe("refused")
            expect(link.last().check).toBe(check)
            await expectV1Runs(board)
        })
    }

    it("GP-TM-05: a replayed offer is refused, even after the device rebooted", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        const first = await offerFor(v2, 10)
        const bad = await offerFor(v2, 11, keyA, { imageDigest: Buffer.alloc(32) })
        await offerAndServe(board, bad, v2)

        const dev = await board.powerCycle()
        const link = new Link()
        const agent = newAgent(dev, await boot(dev), link)
        await agent.start()
        await agent.handleOffer(first)

        expect(link.last().state).toBe("refused")
        expect(link.last().check).toBe("replayed")
        await expectV1Runs(dev)
    })

    it("GP-TM-06: an offer that arrives while v2 is on trial is refused, keeping the fallback", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        const v3 = await makeImage({ version: "3.0.0", counter: 2 })
        await offerAndServe(board, await offerFor(v2, 10), v2)
        const dev = await board.powerCycle()
        const link = new Link()
        const agent = newAgent(dev, await boot(dev), link)
        await agent.start()

        await agent.handleOffer(await offerFor(v3, 11))

        expect(link.last().check).toBe("busy")
        dev.close()
    })
})

describe("update agent: automatic updates", () => {
    const NOON = 1767268800 // 2026-01-01T12:00:00Z

    it("GP-TM-19: waits for the maintenance window, then installs on its own", async () => {
        const board = await makeDevice({
            wallTime: NOON,
            update: { windowStartHour: 22, windowEndHour: 4 },
        })
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        const { end, link, agent } = await offerAndServe(board, await offerFor(v2, 10), v2)
        expect(end).toBe("idle")
        expect(link.last().state).toBe("deferred")
        expect(link.last().check).toBe("window")

        ;(board.clock as any).setWallTime(NOON + 11 * 3600)
        const later = await step(() => agent.tick())

        expect(later).toBe("reboot")
        expect(link.last().state).toBe("installing")
    })

    it("GP-TM-19: a partial window and an unknown time defer the install", async () => {
        const board = await makeDevice({ wallTime: null, update: { windowStartHour: 1, windowEndHour: 5 } })
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })

        const { end, link } = await offerAndServe(board, await offerFor(v2, 10), v2)

        expect(end).toBe("idle")
        expect(link.last().check).toBe("no-time")
    })

    it("GP-TM-19: with automatic updates off, an update waits for an approval", async () => {
        const board = await makeDevice({ update: { automatic: false } })
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        const { link, agent } = await offerAndServe(board, await offerFor(v2, 10), v2)
        expect(link.last().check).toBe("manual")
        expect(await step(() => agent.tick())).toBe("idle")

        agent.approveInstall()

        expect(await step(() => agent.tick())).toBe("reboot")
    })

    it("asks again for chunks when the publisher stays silent, and reports a stall", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2 })
        const link = new Link()
        const agent = newAgent(board, await boot(board), link)
        await agent.start()
        await agent.handleOffer(await offerFor(v2, 10))
        const sent = link.requests.length
        link.requests = []

        for (let i = 0; i < 40; i++) {
            await board.advance(1000)
            await agent.tick()
        }

        expect(link.requests.length).toBeGreaterThanOrEqual(3 * sent)
        expect(link.states()).toContain("stalled")
        expect(await serve(agent, link, v2)).toBe("reboot")
    })
})
