/**
 * Update offers on a board that verifies SLH-DSA only (sim RestrictedCrypto, the stand-in
 * for DeviceScript): the device-target rule taken from OfferTrust and the agent config, the
 * per-signature verdicts in the verified offer, in OfferError and on the status topic
 * (GP-TM-04, GP-TM-05, GP-TM-36). Signed fixture: test/image/fixtures/hybrid.json.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { parseImageHeader } from "../../boot/image"
import { encodeEntry, encodeTrailer, ENTRY_SIGNATURE } from "../../boot/image-format"
import { ALG_ECDSA_P256, ALG_SLH_DSA_SHA2_128S } from "../../boot/anchor"
import { MeasuredBoot } from "../../boot/stub"
import { Crypto } from "../../hal/crypto"
import { UpdateAgent } from "../../ota/agent"
import { verifyDownload } from "../../ota/agent-verify"
import { idleOtaState, OtaState } from "../../ota/agent-state"
import { OfferError, parseOffer, verifyOffer } from "../../ota/offer"
import { SimBoard } from "../../sim/board"
import { RestrictedCrypto, SimCrypto } from "../../sim/crypto"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { bufferSource } from "../../tools/signer"
import { loadHybrid, OFFER_SAMPLE } from "../image/fixtures/hybrid"
import { Link } from "./helpers"

const sim = new SimCrypto()
const HYBRID = { signaturePolicy: "hybrid" as const }
const noEcdsa = new RestrictedCrypto(["slh-dsa-sha2-128s"])

let a: ReleasePrivateKey
let offerA: Buffer
let imageA: Buffer

beforeAll(() => {
    const fixture = loadHybrid()
    a = fixture.a
    offerA = fixture.offerA
    imageA = fixture.imageA
})
afterAll(() => cleanupTestBoards())

/** The offer with the signature entry of `algorithmId` dropped or changed. */
function editSignature(bytes: Buffer, algorithmId: number, drop: boolean): Buffer {
    const parsed = parseOffer(bytes)
    const entries: Buffer[] = []
    for (const e of parsed.trailer.entries) {
        const mine = e.type === ENTRY_SIGNATURE && e.value[0] === algorithmId
        if (mine && drop) continue
        const value = Buffer.from(e.value)
        if (mine) value[value.length - 1] ^= 0x01
        entries.push(encodeEntry(e.type, value))
    }
    return Buffer.concat([parsed.body, encodeTrailer(entries)])
}

function anchors() {
    return [{ digest: a.anchor, revoked: false }]
}

function verdicts(list: { algorithm: string; verdict: string }[] | null | undefined): string[] {
    return (list ?? []).map((s) => `${s.algorithm}:${s.verdict}`)
}

async function refusal(bytes: Buffer, board: Crypto, rule: boolean): Promise<OfferError> {
    const trust = { anchors: anchors(), ...HYBRID }
    try {
        await verifyOffer(board, bytes, { ...trust, acceptUnverifiableEcdsa: rule })
    } catch (err) {
        expect(err).toBeInstanceOf(OfferError)
        return err as OfferError
    }
    throw new Error("offer accepted")
}

describe("verifyOffer: the device-target rule", () => {
    it("GP-TM-36: a board without ECDSA takes a hybrid offer only with the rule", async () => {
        const trust = { anchors: anchors(), ...HYBRID, acceptUnverifiableEcdsa: true }

        const taken = await verifyOffer(noEcdsa, offerA, trust)
        const refused = await refusal(offerA, noEcdsa, false)

        expect(taken.offer.sequence).toBe(OFFER_SAMPLE.sequence)
        expect(verdicts(taken.signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])
        expect(refused.check).toBe("signature-unverifiable")
        expect(verdicts(refused.signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])
    })

    it("GP-TM-04: a board with ECDSA reports both halves passed, rule or not", async () => {
        for (const rule of [false, true]) {
            const trust = { anchors: anchors(), ...HYBRID, acceptUnverifiableEcdsa: rule }
            const taken = await verifyOffer(sim, offerA, trust)
            expect(verdicts(taken.signatures)).toEqual([
                "ecdsa-p256-sha256:passed",
                "slh-dsa-sha2-128s:passed",
            ])
        }
    })

    it("GP-TM-04: the rule does not excuse a stripped post-quantum half", async () => {
        const noPq = editSignature(offerA, ALG_SLH_DSA_SHA2_128S, true)
        const noClassical = editSignature(offerA, ALG_ECDSA_P256, true)

        const err = await refusal(noPq, noEcdsa, true)

        expect(err.check).toBe("signature-policy")
        expect(err.signatures).toBeNull()
        expect((await refusal(noClassical, noEcdsa, true)).check).toBe("signature-policy")
    })

    it("GP-TM-04: a damaged SLH-DSA half is refused with its failed verdict", async () => {
        const bad = editSignature(offerA, ALG_SLH_DSA_SHA2_128S, false)

        const err = await refusal(bad, noEcdsa, true)

        expect(err.check).toBe("signature")
        expect(verdicts(err.signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:failed",
        ])
    })

    it("GP-TM-36: without ECDSA a damaged ECDSA half is unverifiable, never passed", async () => {
        const bad = editSignature(offerA, ALG_ECDSA_P256, false)
        const trust = { anchors: anchors(), ...HYBRID, acceptUnverifiableEcdsa: true }

        const taken = await verifyOffer(noEcdsa, bad, trust)
        const onFullBoard = await refusal(bad, sim, true)

        expect(taken.signatures[0]).toMatchObject({
            algorithm: "ecdsa-p256-sha256",
            verdict: "unverifiable",
        })
        expect(onFullBoard.check).toBe("signature")
        expect(verdicts(onFullBoard.signatures)[0]).toBe("ecdsa-p256-sha256:failed")
    })
})

/** A board of the fixture's class trusting identity a, verifying SLH-DSA only. */
async function restrictedBoard(): Promise<SimBoard> {
    const board = await makeTestBoard({
        deviceClass: OFFER_SAMPLE.deviceClass,
        trust: [a.anchor],
        counter: 1,
        slotSize: 32768,
        profile: { boot: { trialAttempts: 3, signaturePolicy: "hybrid" } },
    })
    // The sim board's crypto is swapped for one that verifies SLH-DSA only.
    ;(board as unknown as { crypto: Crypto }).crypto = noEcdsa
    return board
}

function agentOn(board: SimBoard, link: Link, rule: boolean): UpdateAgent {
    const measured: MeasuredBoot = {
        slot: "a",
        version: "1.0.0",
        securityCounter: 1,
        digest: "00".repeat(32),
        keySlot: 0,
        trial: false,
        attempt: 0,
    } as MeasuredBoot
    return new UpdateAgent(
        board,
        {
            deviceId: "dev-hybrid",
            deviceClass: OFFER_SAMPLE.deviceClass,
            update: board.profile.update,
            signaturePolicy: "hybrid",
            acceptUnverifiableEcdsa: rule,
            measured: measured,
        },
        link
    )
}

describe("update agent on a board without ECDSA", () => {
    it("GP-TM-36: takes the hybrid offer with the rule, without it reports verdicts", async () => {
        const board = await restrictedBoard()
        const withRule = new Link()
        const without = new Link()
        const ruled = agentOn(board, withRule, true)
        const plain = agentOn(board, without, false)
        await plain.start()

        await plain.handleOffer(offerA)
        await ruled.start()
        await ruled.handleOffer(offerA)

        expect(without.states()).toEqual(["refused:signature-unverifiable"])
        expect(without.last().seq).toBeUndefined()
        expect(verdicts(without.last().signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])
        expect(without.last().signatures?.map((s) => s.required)).toEqual([true, true])
        expect(withRule.states()[0]).toBe("accepted")
        expect(ruled.phase()).toBe("downloading")
        board.close()
    })

    it("GP-TM-05: a stripped or damaged post-quantum half is refused and reported", async () => {
        const board = await restrictedBoard()
        const link = new Link()
        const agent = agentOn(board, link, true)
        await agent.start()

        await agent.handleOffer(editSignature(offerA, ALG_SLH_DSA_SHA2_128S, true))
        await agent.handleOffer(editSignature(offerA, ALG_SLH_DSA_SHA2_128S, false))

        expect(link.states()).toEqual(["refused:signature-policy", "refused:signature"])
        expect(link.statuses[0].signatures).toBeUndefined()
        expect(verdicts(link.statuses[1].signatures)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:failed",
        ])
        expect(agent.phase()).toBe("idle")
        board.close()
    })

    it("GP-TM-36: a downloaded hybrid image passes the agent checks with the rule", async () => {
        const board = await restrictedBoard()
        await board.debugFlash("slot-b", imageA)
        const header = await parseImageHeader(bufferSource(imageA))
        const state: OtaState = {
            ...idleOtaState(7),
            phase: "downloading",
            slot: "b",
            sequence: 7,
            imageSize: imageA.length,
            imageDigest: sim.sha256([imageA]),
            securityCounter: header.securityCounter,
            version: header.version,
        }
        const config = { deviceClass: OFFER_SAMPLE.deviceClass, ...HYBRID }
        const ruled = { ...config, acceptUnverifiableEcdsa: true }

        const taken = await verifyDownload(board, state, ruled)
        const refused = await verifyDownload(board, state, config)

        expect(taken).toBeNull()
        expect(refused).toBe("signature-unverifiable")
        board.close()
    })
})
