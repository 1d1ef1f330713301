/**
 * Attack suite of the trailer parser (docs/image-format.md): trailers that lie about their
 * length, entries that run past the end, duplicated, unknown, missing and wrongly sized
 * entries, and unsigned images are all refused with the named check (GP-TM-04).
 */

import { describe, expect, it } from "vitest"
import { verifyImage } from "../../boot/image"
import {
    algorithmValue,
    encodeEntry,
    encodeHeader,
    encodeTrailer,
    ENTRY_DIGEST,
    ENTRY_KEY_DIGEST,
    ENTRY_PUBLIC_KEY,
    ENTRY_SIGNATURE,
} from "../../boot/image-format"
import { readU32, writeU32 } from "../../boot/bytes"
import { bufferSource } from "../../tools/signer"
import {
    checkOf,
    crypto,
    DEVICE_CLASS,
    entriesOf,
    policyFor,
    signedImage,
    testKey,
    trailerOffset,
    withTrailer,
} from "./helpers"

const key = testKey()

async function verify(image: Buffer, overrides = {}) {
    return verifyImage(crypto, bufferSource(image), policyFor(key, overrides))
}

describe("verifyImage refuses malformed trailers", () => {
    it("GP-TM-04: refuses a trailer length larger than the trailer", async () => {
        const image = await signedImage()
        const off = trailerOffset(image)
        const longer = Buffer.concat([image, Buffer.alloc(8)])
        writeU32(longer, off + 4, readU32(image, off + 4) + 8)

        expect(await checkOf(verify(longer))).toBe("entry-unknown")
        writeU32(image, off + 4, readU32(image, off + 4) + 8)
        expect(await checkOf(verify(image))).toBe("trailer-length")
        expect(await checkOf(verify(image, { exact: false }))).toBe("trailer-length")
    })

    it("GP-TM-04: refuses a trailer length shorter than its entries", async () => {
        const image = await signedImage()
        const off = trailerOffset(image)
        writeU32(image, off + 4, readU32(image, off + 4) - 1)

        expect(await checkOf(verify(image, { exact: false }))).toBe("trailer-length")
    })

    it("GP-TM-04: refuses trailer lengths below the head and above the maximum", async () => {
        const image = await signedImage()
        const off = trailerOffset(image)
        for (const length of [0, 7, 16385, 0xffffffff]) {
            const bad = Buffer.from(image)
            writeU32(bad, off + 4, length)
            expect(await checkOf(verify(bad, { exact: false }))).toBe("trailer-length")
        }
    })

    it("GP-TM-04: refuses an entry whose length runs past the trailer end", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)
        const last = entries[entries.length - 1]
        last.writeUInt16BE(last.length, 2)

        expect(await checkOf(verify(withTrailer(image, entries)))).toBe("trailer-length")
    })

    it("GP-TM-04: refuses a payload size that runs past the source", async () => {
        const image = await signedImage()
        writeU32(image, 12, image.length)

        expect(await checkOf(verify(image))).toBe("payload-size")
    })

    it("GP-TM-04: refuses duplicated entries of every type", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)

        for (let i = 0; i < entries.length; i++) {
            const doubled = [...entries.slice(0, i + 1), entries[i], ...entries.slice(i + 1)]
            expect(await checkOf(verify(withTrailer(image, doubled)))).toBe("entry-duplicate")
        }
    })

    it("GP-TM-04: refuses unknown entry types, even empty ones", async () => {
        const image = await signedImage()
        for (const type of [0, 5, 0x8000, 0xffff]) {
            const entries = [...entriesOf(image), encodeEntry(type, Buffer.alloc(0))]
            expect(await checkOf(verify(withTrailer(image, entries)))).toBe("entry-unknown")
        }
    })

    it("GP-TM-04: refuses a trailer missing any required entry", async () => {
        const image = await signedImage()
        const entries = entriesOf(image)

        for (let i = 0; i < entries.length; i++) {
            const fewer = entries.filter((_, j) => j !== i)
            expect(await checkOf(verify(withTrailer(image, fewer)))).toBe("entry-missing")
        }
    })

    it("GP-TM-04: refuses entries of the wrong size and unknown algorithm ids", async () => {
        const image = await signedImage()
        const base = entriesOf(image)
        const cases: [number, Buffer, string][] = [
            [0, encodeEntry(ENTRY_DIGEST, Buffer.alloc(31)), "entry-length"],
            [1, encodeEntry(ENTRY_KEY_DIGEST, Buffer.alloc(33)), "entry-length"],
            [2, encodeEntry(ENTRY_PUBLIC_KEY, Buffer.alloc(0)), "entry-length"],
            [2, encodeEntry(ENTRY_PUBLIC_KEY, Buffer.from([9, 1, 2])), "algorithm"],
            [3, encodeEntry(ENTRY_SIGNATURE, Buffer.alloc(64, 1)), "entry-length"],
            [3, encodeEntry(ENTRY_SIGNATURE, Buffer.alloc(66, 1)), "entry-length"],
        ]

        for (const [index, entry, check] of cases) {
            const entries = base.slice(0)
            entries[index] = entry
            expect(await checkOf(verify(withTrailer(image, entries)))).toBe(check)
        }
    })

    it("GP-TM-04: refuses an unsigned image whose digest is right", async () => {
        const header = encodeHeader({
            imageType: 1,
            deviceClass: DEVICE_CLASS,
            version: "9.9.9",
            securityCounter: 9,
            payloadSize: 4,
        })
        const body = Buffer.concat([header, Buffer.from("evil")])
        const publicKey = key.keys[0].publicKey
        const trailer = encodeTrailer([
            encodeEntry(ENTRY_DIGEST, crypto.sha256([body])),
            encodeEntry(ENTRY_KEY_DIGEST, key.anchor),
            encodeEntry(ENTRY_PUBLIC_KEY, algorithmValue("ecdsa-p256-sha256", publicKey)),
            encodeEntry(ENTRY_SIGNATURE, algorithmValue("ecdsa-p256-sha256", Buffer.alloc(64))),
        ])

        expect(await checkOf(verify(Buffer.concat([body, trailer])))).toBe("signature")
    })
})
