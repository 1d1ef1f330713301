/**
 * Operator-signed privacy requests (src/privacy/rights.ts, requests.ts; GP-TM-14,
 * GP-TM-10): the backend relays the owner's request signed by an operator key of the
 * device profile. Attack suite: a stranger's key, a forged or altered body, another device,
 * an expired or over-long request and a replay (also after a reboot and an erasure) are all
 * refused before anything changes.
 */

import { afterAll, describe, expect, it } from "vitest"
import {
    KEY_REQUEST_SEQ,
    decodePrivacyTopic,
    handleOperatorRequest,
    operatorActor,
    privacyRequestHandler,
} from "../../src/privacy/rights"
import { cleanupTestBoards } from "../../sim/testing"
import {
    Rig,
    T0,
    freshRig,
    openRig,
    operatorPublic,
    requestBody,
    rightsFor,
    signedEnvelope,
    signedRequest,
    strangerPublic,
    strangerSecret,
} from "./helpers"

afterAll(() => cleanupTestBoards())

async function send(rig: Rig, payload: Buffer) {
    return handleOperatorRequest(rightsFor(rig, { owner: false }), payload)
}

async function withData(): Promise<Rig> {
    const rig = await freshRig()
    await rig.manager.collect("owner-profile", { name: "Ada", contact: "ada@example.org" })
    await rig.manager.setConsent("telemetry", true, "console:owner")
    return rig
}

/** Runs `payload` and checks it was refused with `check`, changing no flash byte. */
async function expectRefused(rig: Rig, payload: Buffer, check: string) {
    const before = rig.prefs.snapshot()
    const ops = rig.board.flash.opCount

    const reply = await send(rig, payload)

    expect(reply.ok, check).toBe(false)
    expect(reply.document, check).toBeNull()
    expect(rig.prefs.snapshot(), check).toEqual(before)
    expect(rig.board.flash.opCount, check).toBe(ops)
    expect(rig.audit.at(-1), check).toMatchObject({
        event: "privacy-request",
        outcome: "refused",
        detail: "check=" + check,
    })
    return reply
}

describe("operator-signed requests", () => {
    it("GP-TM-10: a signed withdrawal relayed by the backend stops telemetry", async () => {
        const rig = await withData()

        const reply = await send(
            rig,
            signedRequest({ right: "consent", args: { category: "telemetry", grant: false } })
        )

        expect(reply).toMatchObject({ ok: true, id: "req-1", right: "consent" })
        expect(rig.manager.mayCollect("telemetry")).toBe(false)
        expect(rig.manager.consents()[0].by).toBe(operatorActor(rig.board.crypto, operatorPublic))
        expect(rig.prefs.get(KEY_REQUEST_SEQ)).toBe("1")
    })

    it("GP-TM-14: a signed export and erasure work end to end", async () => {
        const rig = await withData()

        const exported = await send(rig, signedRequest({ right: "export", seq: 5 }))
        const erased = await send(rig, signedRequest({ right: "erase", seq: 6 }))

        expect(exported.document!.data["owner-profile"][0].f.name).toBe("Ada")
        expect(erased.ok).toBe(true)
        expect(rig.manager.held("owner-profile")).toEqual([])
    })

    it("GP-TM-14: a stranger's key is refused though its signature is valid", async () => {
        const rig = await withData()
        const body = requestBody({ right: "erase" })
        const payload = signedEnvelope(body, strangerSecret, strangerPublic)

        const reply = await expectRefused(rig, payload, "operator")

        expect(reply.error).toBe("refused")
    })

    it("GP-TM-14: an altered body under a listed key fails the signature check", async () => {
        const rig = await withData()
        const genuine = JSON.parse(signedRequest({ right: "export" }).toString())
        genuine.body = genuine.body.replace('"export"', '"erase"')

        await expectRefused(rig, Buffer.from(JSON.stringify(genuine)), "signature")
        expect(rig.manager.held("owner-profile")).toHaveLength(1)
    })

    it("GP-TM-14: a listed key with another key's signature is refused", async () => {
        const rig = await withData()
        const body = requestBody({ right: "erase" })
        const forged = signedEnvelope(body, strangerSecret, operatorPublic)

        await expectRefused(rig, forged, "signature")
    })

    it("GP-TM-14: a request for another device is refused", async () => {
        const rig = await withData()

        await expectRefused(rig, signedRequest({ right: "erase", device: "dev-other" }), "device")
    })

    it("GP-TM-14: an expired request, or one valid for too long, is refused", async () => {
        const rig = await withData()

        await expectRefused(rig, signedRequest({ right: "erase", expires: T0 - 1 }), "expired")
        await expectRefused(
            rig,
            signedRequest({ right: "erase", expires: T0 + 30 * 24 * 3600 }),
            "lifetime"
        )
    })

    it("GP-TM-14: a replay is refused, also after a reboot and an erasure", async () => {
        const rig = await withData()
        const args = { category: "location", grant: true }
        const grant = signedRequest({ right: "consent", seq: 3, args })
        const erase = signedRequest({ right: "erase", seq: 4 })
        expect((await send(rig, grant)).ok).toBe(true)

        await expectRefused(rig, grant, "replayed")
        const board = await rig.board.powerCycle()
        const again = await openRig(board)
        await expectRefused(again, grant, "replayed")
        expect((await send(again, erase)).ok).toBe(true)
        await expectRefused(again, grant, "replayed")
        expect(again.manager.mayCollect("location")).toBe(false)
    })

    it("GP-TM-14: malformed envelopes and bodies are invalid and change nothing", async () => {
        const rig = await withData()
        const badBody = signedEnvelope(JSON.stringify({ v: 1, device: "x", right: "erase" }))

        const a = await expectRefused(rig, Buffer.from("not json"), "format")
        const b = await expectRefused(rig, badBody, "format")

        expect([a.error, b.error]).toEqual(["invalid", "invalid"])
    })

    it("GP-TM-14: a device that does not know the time still refuses replays", async () => {
        const rig = await freshRig({ wallTime: null })
        const old = signedRequest({ right: "export", seq: 9, expires: 1 })

        expect((await send(rig, old)).ok).toBe(true)
        await expectRefused(rig, old, "replayed")
    })
})

describe("session route", () => {
    it("GP-TM-14: takes privacy/request only and replies on privacy/reply", async () => {
        const rig = await withData()
        const published: [string, any][] = []
        const handle = privacyRequestHandler(rightsFor(rig, { owner: false }), async (s, p) => {
            published.push([s, JSON.parse(p.toString())])
        })

        const request = signedRequest({ right: "info", id: "q-7" })
        const payload = decodePrivacyTopic(request, ["request"])
        await handle(payload, ["request"])

        expect(() => decodePrivacyTopic(payload, ["reply"])).toThrow(/topic/)
        expect(() => decodePrivacyTopic(payload, [])).toThrow(/topic/)
        expect(published).toHaveLength(1)
        expect(published[0][0]).toBe("privacy/reply")
        expect(published[0][1]).toMatchObject({ v: 1, id: "q-7", right: "info", ok: true })
    })
})
