/**
 * Attack suite of verifyImage (docs/image-format.md): tampered, truncated, extended, wrongly
 * signed, revoked-key, wrong-class and downgraded images are refused with the named check
 * (GP-TM-03, GP-TM-04, GP-TM-06); a valid image yields exactly the bytes that were hashed.
 */

import { describe, expect, it } from "vitest"
import { p256 } from "@noble/curves/nist.js"
import { ImageSource, verifyImage } from "../../boot/image"
import {
    algorithmValue,
    encodeEntry,
    ENTRY_DIGEST,
    ENTRY_KEY_DIGEST,
    ENTRY_SIGNATURE,
    HEADER_SIZE,
    signedMessage,
} from "../../boot/image-format"
import { writeU32 } from "../../boot/bytes"
import { bufferSource, signMessage } from "../../tools/signer"
import {
    checkOf,
    crypto,
    DEVICE_CLASS,
    entriesOf,
    payloadOf,
    policyFor,
    signedImage,
    slots,
    testKey,
    trailerOffset,
    withTrailer,
} from "./helpers"

const key = testKey()
const otherKey = testKey("ecdsa-p256-sha256", 0x22)

async function verify(image: Buffer, overrides = {}) {
    return verifyImage(crypto, bufferSource(image), policyFor(key, overrides))
}

describe("verifyImage accepts a signed image", () => {
    it("GP-TM-04: returns header, digest, key slot, length and the hashed payload", async () => {
        const payload = payloadOf(10000)
        const image = await signedImage({ payload })

        const verified = await verify(image, { keepPayload: true })

        expect(verified.header).toEqual({
            formatVersion: 1,
            imageType: 1,
            deviceClass: DEVICE_CLASS,
            version: "1.2.3",
            securityCounter: 5,
            payloadSize: 10000,
            headerSize: HEADER_SIZE,
        })
        expect(verified.digest).toEqual(crypto.sha256([image.subarray(0, HEADER_SIZE + 10000)]))
        expect(verified.keySlot).toBe(0)
        expect(verified.length).toBe(image.length)
        expect(verified.payload).toEqual(payload)
    })

    it("GP-TM-04: hands back the bytes it hashed, never a second read", async () => {
        const image = await signedImage()
        const readBefore = new Set<number>()
        // A source that serves tampered bytes for any offset it has served once (TOCTOU).
        const src: ImageSource = {
            size: image.length,
            read: async (offset, length) => {
                const bytes = Buffer.from(image.subarray(offset, offset + length))
                if (readBefore.has(offset)) bytes.fill(0x41)
                readBefore.add(offset)
                return bytes
            },
        }

        const verified = await verifyImage(crypto, src, policyFor(key, { keepPayload: true }))

        expect(verified.payload).toEqual(payloadOf(64))
    })

    it("returns no payload unless asked, and finds the key in any OTP slot", async () => {
        const image = await signedImage()

        const verified = await verify(image, { anchors: slots(null, otherKey.anchor, key.anchor) })

        expect(verified.payload).toBeNull()
        expect(verified.keySlot).toBe(2)
    })

    it("accepts an Ed25519 image", async () => {
        const edKey = testKey("ed25519", 0x33)
        const image = await signedImage({ key: edKey })

        const verified = await verifyImage(crypto, bufferSource(image), policyFor(edKey))

        expect(verified.header.version).toBe("1.2.3")
    })

    it("accepts an empty payload", async () => {
        const image = await signedImage({ payload: Buffer.alloc(0) })

        const verified = await verify(image, { keepPayload: true })

        expect(verified.payload).toEqual(Buffer.alloc(0))
    })

    it("accepts bytes after the trailer when the source is a slot (not exact)", async () => {
        const image = await signedImage()
        const slot = Buffer.concat([image, Buffer.alloc(4096, 0xff)])

        const verified = await verify(slot, { exact: false })

        expect(verified.length).toBe(image.length)
    })
})

describe("verifyImage refuses tampered images", () => {
    it("GP-TM-04: refuses every byte of header, payload and trailer flipped in turn", async () => {
        const image = await signedImage()
        const accepted: string[] = []

        for (let i = 0; i < image.length; i++) {
            for (const mask of [0x01, 0xff]) {
                const bad = Buffer.from(image)
                bad[i] ^= mask
                if ((await checkOf(verify(bad))) === "accepted") accepted.push(`${i}^${mask}`)
            }
        }

        expect(image.length).toBeGreaterThan(300)
        expect(accepted).toEqual([])
    })

    it("GP-TM-04: refuses the image truncated at every length", async () => {
        const image = await signedImage()
        const accepted: number[] = []

        for (let n = 0; n < image.length; n++) {
            const cut = image.subarray(0, n)
            if ((await checkOf(verify(cut))) !== "accepted") continue
            accepted.push(n)
        }
        for (let n = 0; n < image.length; n++) {
            const cut = image.subarray(0, n)
            if ((await checkOf(verify(cut, { exact: false }))) === "accepted") accepted.push(n)
        }

        expect(accepted).toEqual([])
    })

    it("GP-TM-04: refuses an empty file and names the check", async () => {
        expect(await checkOf(verify(Buffer.alloc(0)))).toBe("truncated")
    })

    it("GP-TM-04: refuses a file extended by one byte (exact source)", async () => {
        const image = await signedImage()

        const check = await checkOf(verify(Buffer.concat([image, Buffer.alloc(1)])))

        expect(check).toBe("trailing-bytes")
    })

    it("GP-TM-04: refuses a source whose read returns fewer bytes than asked", async () => {
        const image = await signedImage()
        const src: ImageSource = {
            size: image.length,
            read: async (offset, length) => image.subarray(offset, offset + length - 1),
        }

        expect(await checkOf(verifyImage(crypto, src, policyFor(key)))).toBe("truncated")
    })

    it("GP-TM-04: refuses a changed payload carried with a recomputed digest entry", async () => {
        const image = await signedImage()
        const bad = Buffer.from(image)
        bad[HEADER_SIZE] ^= 0x01
        const digest = crypto.sha256([bad.subarray(0, trailerOffset(bad))])
        const entries = entriesOf(bad)
        entries[0] = encodeEntry(ENTRY_DIGEST, digest)

        expect(await checkOf(verify(withTrailer(bad, entries)))).toBe("signature")
    })

    it("GP-TM-04: names the digest check when only the payload changes", async () => {
        const bad = await signedImage()
        bad[HEADER_SIZE + 3] ^= 0x80

        expect(await checkOf(verify(bad))).toBe("digest")
    })

    it("passes read errors of the source (power loss, flash) through unchanged", async () => {
        const image = await signedImage()
        const failure = new Error("power cut")
        const src: ImageSource = {
            size: image.length,
            read: async (offset) => {
                if (offset > 0) throw failure
                return image.subarray(0, HEADER_SIZE)
            },
        }

        await expect(verifyImage(crypto, src, policyFor(key))).rejects.toBe(failure)
    })
})

describe("verifyImage refuses wrong keys", () => {
    it("GP-TM-03: refuses an image signed by a key that is not a trust anchor", async () => {
        const image = await signedImage({ key: otherKey })

        expect(await checkOf(verify(image))).toBe("key-unknown")
    })

    it("GP-TM-03: refuses the trusted key digest carried with the attacker's key", async () => {
        const image = await signedImage({ key: otherKey })
        const entries = entriesOf(image)
        entries[1] = encodeEntry(ENTRY_KEY_DIGEST, key.anchor)

        expect(await checkOf(verify(withTrailer(image, entries)))).toBe("public-key")
    })

    it("GP-TM-03: refuses the trusted public key with the attacker's signature", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)
        const digest = crypto.sha256([image.subarray(0, trailerOffset(image))])
        const forged = signMessage(otherKey.keys[0], signedMessage(digest, key.anchor))
        entries[3] = encodeEntry(ENTRY_SIGNATURE, algorithmValue("ecdsa-p256-sha256", forged))

        expect(await checkOf(verify(withTrailer(image, entries)))).toBe("signature")
    })

    it("GP-TM-03: refuses a signature over the bare digest (no domain label)", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)
        const digest = crypto.sha256([image.subarray(0, trailerOffset(image))])
        const sig = Buffer.from(p256.sign(digest, key.keys[0].privateKey))
        entries[3] = encodeEntry(ENTRY_SIGNATURE, algorithmValue("ecdsa-p256-sha256", sig))

        expect(await checkOf(verify(withTrailer(image, entries)))).toBe("signature")
    })

    it("GP-TM-03: refuses an image whose key slot is revoked", async () => {
        const image = await signedImage()
        const anchors = slots(key.anchor)
        anchors[0].revoked = true

        expect(await checkOf(verify(image, { anchors }))).toBe("key-revoked")
    })

    it("GP-TM-03: a revocation wins over the same anchor unrevoked in another slot", async () => {
        const image = await signedImage()
        const anchors = slots(key.anchor, key.anchor)
        anchors[1].revoked = true

        expect(await checkOf(verify(image, { anchors }))).toBe("key-revoked")
    })

    it("GP-TM-03: refuses every image when all slots are blank", async () => {
        const image = await signedImage()

        expect(await checkOf(verify(image, { anchors: slots() }))).toBe("key-unknown")
    })

    it("GP-TM-03: refuses a signature of an algorithm with no public key", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)
        entries.push(encodeEntry(ENTRY_SIGNATURE, algorithmValue("ed25519", Buffer.alloc(64))))

        expect(await checkOf(verify(withTrailer(image, entries)))).toBe("signature")
    })
})

describe("verifyImage enforces the device profile", () => {
    it("GP-TM-04: refuses an image built for another device class", async () => {
        const image = await signedImage({ deviceClass: "other-sensor" })

        expect(await checkOf(verify(image))).toBe("device-class")
    })

    it("GP-TM-06: refuses an image whose security counter is below the OTP counter", async () => {
        const image = await signedImage({ counter: 4 })

        expect(await checkOf(verify(image, { minSecurityCounter: 5 }))).toBe("security-counter")
    })

    it("GP-TM-06: accepts a counter equal to or above the OTP counter", async () => {
        const image = await signedImage({ counter: 6 })

        expect((await verify(image, { minSecurityCounter: 6 })).header.securityCounter).toBe(6)
        expect((await verify(image, { minSecurityCounter: 0 })).header.securityCounter).toBe(6)
    })

    it("GP-TM-06: refuses a header counter above what the OTP counter can hold", async () => {
        const image = await signedImage()
        writeU32(image, 16, 65)

        expect(await checkOf(verify(image))).toBe("security-counter")
    })

    it("refuses a classical identity under the hybrid and pq-only policies", async () => {
        const image = await signedImage()

        expect(await checkOf(verify(image, { signaturePolicy: "hybrid" }))).toBe(
            "signature-policy"
        )
        expect(await checkOf(verify(image, { signaturePolicy: "pq-only" }))).toBe(
            "signature-policy"
        )
    })
})
