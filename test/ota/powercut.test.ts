/**
 * Power cut at every flash operation of an update, from the offer to the confirm, with the
 * interrupted write torn (a prefix, or random bits cleared): the device always comes back
 * running v1 or v2, resumes the download where it can, never runs an image that failed
 * verification, and ends on v2 confirmed. GP-TM-06, GP-TM-16, GP-TM-18.
 */

import { afterAll, describe, expect, it } from "vitest"

import { BootDecision, confirmRunningImage } from "../../boot/stub"
import { TearMode } from "../../sim/flash"
import { SimBoard } from "../../sim/board"
import { SimCrypto } from "../../sim/crypto"
import { cleanupTestBoards } from "../../sim/testing"
import { boot, Link, makeDevice, makeImage, newAgent, offerFor, serve, step } from "./helpers"

afterAll(() => cleanupTestBoards())

const crypto = new SimCrypto()
const PAYLOAD = 5000

function measuredDigest(image: Buffer): string {
    return crypto.sha256([image.subarray(0, 96 + PAYLOAD)]).toString("hex")
}

interface Life {
    versions: string[]
    resumedAt: number[]
    refusals: string[]
    finalCounter: number
    cutHappened: boolean
}

/** Runs the update with a cut after `n` flash operations; restarts until v2 is confirmed. */
async function updateWithCut(n: number, tear: TearMode, v1: Buffer, v2: Buffer): Promise<Life> {
    let dev: SimBoard = await makeDevice({ v1: v1, seed: n + 1 })
    const offer = await offerFor(v2, 10)
    const allowed = [measuredDigest(v1), measuredDigest(v2)]
    const life: Life = { versions: [], resumedAt: [], refusals: [], finalCounter: 0, cutHappened: false }
    // Operations still to go before the cut; the count carries across reboots.
    let remaining: number | null = n
    let armedAt = 0

    for (let run = 0; run < 12; run++) {
        if (run > 0) {
            if (remaining !== null) {
                if (dev.flash.lastCut() !== null) remaining = null
                else remaining -= dev.flash.opCount - armedAt
            }
            dev = await dev.powerCycle()
        }
        armedAt = dev.flash.opCount
        if (remaining !== null) dev.flash.armPowerCut(remaining, tear)
        let decision: BootDecision
        try {
            decision = await boot(dev)
        } catch (err) {
            life.cutHappened = true
            continue
        }
        expect(decision.booted, "a valid image boots after cut " + n).not.toBeNull()
        expect(allowed).toContain(decision.measured!.digest)
        life.versions.push(decision.version!)

        const link = new Link()
        const agent = newAgent(dev, decision, link)
        let end = await step(() => agent.start())
        if (end === "idle" && decision.trial) {
            end = await step(async () => {
                await confirmRunningImage(dev, decision.measured!)
                await agent.confirmed()
            })
        }
        if (end === "idle" && agent.phase() === "downloading")
            life.resumedAt.push(link.requests[0].readUInt32BE(8))
        if (end === "idle" && decision.version === "1.0.0" && agent.phase() === "idle")
            end = await step(() => agent.handleOffer(offer))
        if (end === "idle" && agent.phase() === "downloading") end = await serve(agent, link, v2)
        for (const s of link.statuses) if (s.state === "refused") life.refusals.push(s.check!)
        if (end === "power-loss") life.cutHappened = true
        if (end === "idle" && decision.version === "2.0.0" && agent.phase() === "idle") {
            if (dev.flash.lastCut() !== null) life.cutHappened = true
            life.finalCounter = await dev.otp.readCounter()
            dev.close()
            return life
        }
    }
    dev.close()
    throw new Error("no end after cut " + n)
}

describe("power loss during an update", () => {
    it("GP-TM-06: a cut at every flash operation, torn, ends on v2 confirmed and never runs a bad image", async () => {
        const v1 = await makeImage({ version: "1.0.0", counter: 1, payload: Buffer.alloc(PAYLOAD, 1) })
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: Buffer.alloc(PAYLOAD, 2) })
        let resumedMidway = 0
        let cuts = 0
        for (const tear of ["prefix", "garbage"] as TearMode[]) {
            for (let n = 0; n < 200; n++) {
                const life = await updateWithCut(n, tear, v1, v2)
                const where = tear + " cut " + n
                expect(life.refusals, where).toEqual([])
                expect(life.finalCounter, where).toBe(2)
                const v2At = life.versions.indexOf("2.0.0")
                expect(life.versions.slice(v2At).every((v) => v === "2.0.0"), where).toBe(true)
                if (life.resumedAt.some((o) => o > 0)) resumedMidway++
                if (!life.cutHappened) break
                cuts++
            }
        }

        expect(cuts).toBeGreaterThan(40)
        expect(resumedMidway).toBeGreaterThan(4)
    })
})
