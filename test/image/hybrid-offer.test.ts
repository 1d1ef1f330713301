/**
 * Hybrid-signed update offers (ota/offer.ts reuses the image trailer and its trust checks;
 * GP-TM-04, GP-TM-18, GP-TM-34): the host signer puts both halves on an offer, and the
 * policy attacks on images (stripped, swapped halves, revoked anchor, a board without
 * ECDSA) fail on offers the same way. Signed fixture: test/image/fixtures/hybrid.json.
 */

import { beforeAll, describe, expect, it } from "vitest"
import { checkTrailerTrust } from "../../boot/image"
import { encodeEntry, encodeTrailer, ENTRY_SIGNATURE } from "../../boot/image-format"
import { ALG_ECDSA_P256, ALG_SLH_DSA_SHA2_128S } from "../../boot/anchor"
import { SignaturePolicy } from "../../boot/profile"
import { Crypto } from "../../hal/crypto"
import { offerSignedMessage, parseOffer, verifyOffer } from "../../ota/offer"
import { RestrictedCrypto } from "../../sim/crypto"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { loadHybrid, OFFER_SAMPLE } from "./fixtures/hybrid"
import { crypto, slots } from "./helpers"

const noEcdsaBoard = new RestrictedCrypto(["slh-dsa-sha2-128s"])

let a: ReleasePrivateKey
let offerA: Buffer

beforeAll(() => {
    const fixture = loadHybrid()
    a = fixture.a
    offerA = fixture.offerA
})

/** The offer with the signature entries of `algorithmId` dropped. */
function withoutSignature(bytes: Buffer, algorithmId: number): Buffer {
    const parsed = parseOffer(bytes)
    const kept = parsed.trailer.entries
        .filter((e) => !(e.type === ENTRY_SIGNATURE && e.value[0] === algorithmId))
        .map((e) => encodeEntry(e.type, e.value))
    return Buffer.concat([parsed.body, encodeTrailer(kept)])
}

async function offerCheck(
    bytes: Buffer,
    signaturePolicy: SignaturePolicy,
    board: Crypto = crypto,
    anchors = slots(a.anchor)
): Promise<string> {
    try {
        await verifyOffer(board, bytes, { anchors, signaturePolicy })
        return "accepted"
    } catch (err) {
        const check = (err as { check?: unknown }).check
        if (typeof check === "string") return check
        throw err
    }
}

describe("hybrid offers", () => {
    it("GP-TM-18: the host offer signer puts an ECDSA and an SLH-DSA signature on it", async () => {
        const parsed = parseOffer(offerA)

        expect(parsed.trailer.signatures.map((s) => s.algorithm)).toEqual([
            "ecdsa-p256-sha256",
            "slh-dsa-sha2-128s",
        ])
        expect(parsed.offer.sequence).toBe(OFFER_SAMPLE.sequence)
        for (const policy of ["classical", "hybrid", "pq-only"] as const)
            expect(await offerCheck(offerA, policy)).toBe("accepted")
    })

    it("GP-TM-04: a hybrid board refuses an offer with either half stripped", async () => {
        const noPq = withoutSignature(offerA, ALG_SLH_DSA_SHA2_128S)
        const noClassical = withoutSignature(offerA, ALG_ECDSA_P256)

        expect(await offerCheck(noPq, "hybrid")).toBe("signature-policy")
        expect(await offerCheck(noPq, "pq-only")).toBe("signature-policy")
        expect(await offerCheck(noClassical, "hybrid")).toBe("signature-policy")
        expect(await offerCheck(noClassical, "pq-only")).toBe("accepted")
    })

    it("GP-TM-03: refuses a hybrid offer whose anchor is revoked", async () => {
        const anchors = [{ digest: a.anchor, revoked: true }, ...slots()]

        expect(await offerCheck(offerA, "hybrid", crypto, anchors)).toBe("key-revoked")
        expect(await offerCheck(offerA, "pq-only", noEcdsaBoard, anchors)).toBe("key-revoked")
    })

    it("GP-TM-36: a board without ECDSA takes it under pq-only, not under hybrid", async () => {
        expect(await offerCheck(offerA, "pq-only", noEcdsaBoard)).toBe("accepted")
        expect(await offerCheck(offerA, "hybrid", noEcdsaBoard)).toBe("signature-unverifiable")
    })

    it("GP-TM-36: under the device-target rule ECDSA is unverifiable, not passed", async () => {
        const parsed = parseOffer(offerA)
        const digest = crypto.sha256([parsed.body])
        const message = offerSignedMessage(digest, parsed.trailer.keyDigest)
        const rule = { acceptUnverifiableEcdsa: true }

        const trust = await checkTrailerTrust(
            noEcdsaBoard,
            parsed.trailer,
            message,
            slots(a.anchor),
            "hybrid",
            rule
        )

        expect(trust.signatures.map((s) => `${s.algorithm}:${s.verdict}`)).toEqual([
            "ecdsa-p256-sha256:unverifiable",
            "slh-dsa-sha2-128s:passed",
        ])
    })
})
