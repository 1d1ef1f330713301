/**
 * Update offers (ota/offer.ts, docs/update-format.md): signed like images, parsed field by
 * field, and judged against the device: class, targets, replay, expiry, downgrade, the OTP
 * counter and the slot size. GP-TM-18 (signature verified before the update begins),
 * GP-TM-07 (trust anchors and revocation), GP-TM-05 (no outdated or replayed software).
 */

import fc from "fast-check"
import { describe, expect, it } from "vitest"

import { OtpKeySlot } from "../../hal/otp"
import { SimCrypto } from "../../sim/crypto"
import { generateReleaseKey } from "../../tools/keyfile"
import {
    decodeOfferBody,
    DeviceFacts,
    encodeOfferBody,
    judgeOffer,
    Offer,
    OfferError,
    parseOffer,
    verifyOffer,
} from "../../ota/offer"
import { signOffer, signOfferBody } from "../../ota/host/offer-sign"

const crypto = new SimCrypto()
const release = generateReleaseKey("p256")
const other = generateReleaseKey("ed25519")

function anchors(...digests: (Buffer | null)[]): OtpKeySlot[] {
    const slots: OtpKeySlot[] = digests.map((d) => ({ digest: d, revoked: false }))
    while (slots.length < 3) slots.push({ digest: null, revoked: false })
    return slots
}

const trust = { anchors: anchors(release.anchor), signaturePolicy: "classical" as const }

function sampleOffer(over: Partial<Offer> = {}): Offer {
    return {
        sequence: 7,
        deviceClass: "bulwark-test",
        version: "1.2.3",
        securityCounter: 2,
        imageSize: 5000,
        imageDigest: crypto.sha256([Buffer.from("image")]),
        expiry: null,
        targets: [],
        ...over,
    }
}

function facts(over: Partial<DeviceFacts> = {}): DeviceFacts {
    return {
        deviceId: "dev-1",
        deviceClass: "bulwark-test",
        runningVersion: "1.0.0",
        otpCounter: 1,
        storedSequence: 3,
        slotSize: 65536,
        wallTime: null,
        ...over,
    }
}

async function refusal(bytes: Buffer, t = trust): Promise<string> {
    try {
        await verifyOffer(crypto, bytes, t)
    } catch (err) {
        expect(err).toBeInstanceOf(OfferError)
        return (err as OfferError).check
    }
    return "accepted"
}

describe("offer format", () => {
    it("GP-TM-18: a signed offer verifies and keeps every field", async () => {
        const offer = sampleOffer({ targets: ["dev-1", "dev-2"], expiry: 2000000000 })

        const verified = await verifyOffer(crypto, await signOffer(offer, release), trust)

        expect(verified.offer).toEqual(offer)
        expect(verified.keySlot).toBe(0)
        expect(verified.offerDigest.length).toBe(32)
    })

    it("round-trips the body through the encoder and the decoder", () => {
        const offer = sampleOffer({ targets: ["a", "b.c-d"], expiry: 12345 })
        const body = encodeOfferBody(offer)

        expect(decodeOfferBody(body)).toEqual({ offer: offer, size: body.length })
    })

    it("GP-TM-18: an offer without a signature is refused as unsigned", async () => {
        expect(await refusal(encodeOfferBody(sampleOffer()))).toBe("unsigned")
    })

    it("GP-TM-07/41: an offer signed by a key the device does not anchor is refused", async () => {
        expect(await refusal(await signOffer(sampleOffer(), other))).toBe("key-unknown")
    })

    it("GP-TM-07: an offer signed by a revoked key is refused", async () => {
        const revoked = { ...trust, anchors: [{ digest: release.anchor, revoked: true }] }

        expect(await refusal(await signOffer(sampleOffer(), release), revoked)).toBe("key-revoked")
    })

    it("GP-TM-18: an offer with a wrong signature is refused", async () => {
        const bytes = await signOffer(sampleOffer(), release)
        bytes[bytes.length - 5] ^= 0x01

        expect(await refusal(bytes)).toBe("signature")
    })

    it("GP-TM-18: a changed body with the old signature is refused", async () => {
        const bytes = await signOffer(sampleOffer(), release)
        bytes[9] ^= 0x01

        expect(await refusal(bytes)).toBe("offer-digest")
    })

    it("GP-TM-18: every single-byte change of a signed offer is refused", async () => {
        const bytes = await signOffer(sampleOffer({ targets: ["dev-1"] }), release)
        for (let i = 0; i < bytes.length; i++) {
            const copy = Buffer.from(bytes)
            copy[i] ^= 0x40
            expect(await refusal(copy), "byte " + i).not.toBe("accepted")
        }
    })

    it("GP-TM-18: every truncation and an extension of a signed offer are refused", async () => {
        const bytes = await signOffer(sampleOffer(), release)
        for (let n = 0; n < bytes.length; n++)
            expect(await refusal(bytes.subarray(0, n)), "length " + n).not.toBe("accepted")

        expect(await refusal(Buffer.concat([bytes, Buffer.alloc(1)]))).toBe("trailer-length")
    })

    it("refuses unknown flags and reserved bytes even when signed", async () => {
        const flagged = encodeOfferBody(sampleOffer())
        flagged[27] = 1
        const reserved = encodeOfferBody(sampleOffer())
        reserved[66] = 1

        expect(await refusal(await signOfferBody(flagged, release))).toBe("flags")
        expect(await refusal(await signOfferBody(reserved, release))).toBe("reserved")
    })

    it("refuses a body whose size field lies", async () => {
        const body = encodeOfferBody(sampleOffer())
        body[7] = body[7] + 1

        expect(await refusal(await signOfferBody(body, release))).toBe("body-size")
    })

    it("refuses bad names, a zero sequence and a too small image", () => {
        expect(() => encodeOfferBody(sampleOffer({ deviceClass: "Bad Class" }))).toThrow(
            OfferError
        )
        expect(() => encodeOfferBody(sampleOffer({ targets: ["x", "x"] }))).toThrow(OfferError)
        expect(() => encodeOfferBody(sampleOffer({ sequence: 0 }))).toThrow(OfferError)
        expect(() => encodeOfferBody(sampleOffer({ imageSize: 10 }))).toThrow(OfferError)
    })

    it("never throws anything but OfferError on arbitrary bytes", async () => {
        const signed = await signOffer(sampleOffer(), release)
        await fc.assert(
            fc.asyncProperty(
                fc.uint8Array({ maxLength: 600 }),
                fc.nat(signed.length),
                async (noise, cut) => {
                    const mixed = Buffer.concat([signed.subarray(0, cut), Buffer.from(noise)])
                    for (const bytes of [Buffer.from(noise), mixed]) {
                        try {
                            parseOffer(bytes)
                            await verifyOffer(crypto, bytes, trust)
                        } catch (err) {
                            expect(err).toBeInstanceOf(OfferError)
                        }
                    }
                }
            ),
            { numRuns: 300 }
        )
    })
})

describe("judging an authenticated offer", () => {
    it("accepts a newer offer for this device", () => {
        expect(judgeOffer(sampleOffer(), facts())).toBeNull()
        expect(judgeOffer(sampleOffer({ targets: ["dev-0", "dev-1"] }), facts())).toBeNull()
    })

    it("GP-TM-05: refuses an offer for another device class", () => {
        expect(judgeOffer(sampleOffer({ deviceClass: "other" }), facts())).toBe("device-class")
    })

    it("refuses an offer that targets other devices", () => {
        expect(judgeOffer(sampleOffer({ targets: ["dev-2"] }), facts())).toBe("target")
    })

    it("GP-TM-05: refuses a replayed offer whose sequence is not above the stored one", () => {
        expect(judgeOffer(sampleOffer({ sequence: 3 }), facts())).toBe("replayed")
        expect(judgeOffer(sampleOffer({ sequence: 2 }), facts())).toBe("replayed")
    })

    it("refuses an expired offer only when the device knows the time", () => {
        const offer = sampleOffer({ expiry: 1000 })

        expect(judgeOffer(offer, facts({ wallTime: 1000 }))).toBe("expired")
        expect(judgeOffer(offer, facts({ wallTime: 999 }))).toBeNull()
        expect(judgeOffer(offer, facts({ wallTime: null }))).toBeNull()
    })

    it("GP-TM-05: refuses a downgrade and the running version itself", () => {
        expect(judgeOffer(sampleOffer({ version: "0.9.9" }), facts())).toBe("downgrade")
        expect(judgeOffer(sampleOffer({ version: "1.0.0" }), facts())).toBe("downgrade")
    })

    it("GP-TM-05: refuses an image below the OTP counter", () => {
        expect(judgeOffer(sampleOffer({ securityCounter: 0 }), facts())).toBe("security-counter")
    })

    it("refuses an image larger than the slot", () => {
        expect(judgeOffer(sampleOffer({ imageSize: 65537 }), facts())).toBe("oversized")
    })
})
