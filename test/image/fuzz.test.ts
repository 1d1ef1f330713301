/**
 * Property-based fuzzing (fast-check) of the image parser and verifier, which see outside
 * bytes (GP-TM-04, GP-TM-54): no input makes them throw anything but ImageError, no
 * mutation of a signed image is accepted, and every image the signer makes verifies.
 */

import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { parseImageHeader, readImageLayout, verifyImage } from "../../boot/image"
import {
    decodeTrailer,
    encodeEntry,
    encodeHeader,
    encodeTrailer,
    HEADER_SIZE,
    ImageError,
} from "../../boot/image-format"
import { bufferSource } from "../../tools/signer"
import { crypto, DEVICE_CLASS, payloadOf, policyFor, signedImage, testKey } from "./helpers"

const key = testKey()

/** Runs `fn`; true when it returned or threw an ImageError, false for any other throw. */
async function onlyImageErrors(fn: () => Promise<unknown>): Promise<"ok" | "refused"> {
    try {
        await fn()
        return "ok"
    } catch (err) {
        if (err instanceof ImageError && typeof err.check === "string") return "refused"
        throw err
    }
}

async function verify(bytes: Buffer, exact = true) {
    return verifyImage(crypto, bufferSource(bytes), policyFor(key, { exact, keepPayload: true }))
}

const header = encodeHeader({
    imageType: 1,
    deviceClass: DEVICE_CLASS,
    version: "1.0.0",
    securityCounter: 5,
    payloadSize: 16,
})

describe("image parser fuzzing", () => {
    it("GP-TM-54: arbitrary bytes are refused with an ImageError, nothing else", async () => {
        await fc.assert(
            fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (raw) => {
                const bytes = Buffer.from(raw)
                const src = bufferSource(bytes)
                await onlyImageErrors(() => parseImageHeader(src))
                await onlyImageErrors(() => readImageLayout(src, false))
                expect(await onlyImageErrors(() => verify(bytes))).toBe("refused")
            }),
            { numRuns: 500 }
        )
    })

    it("GP-TM-54: a valid header followed by arbitrary bytes is refused", async () => {
        await fc.assert(
            fc.asyncProperty(fc.uint8Array({ minLength: 16, maxLength: 400 }), async (raw) => {
                const bytes = Buffer.concat([header, Buffer.from(raw)])
                expect(await onlyImageErrors(() => verify(bytes, false))).toBe("refused")
            }),
            { numRuns: 500 }
        )
    })

    it("GP-TM-54: structured trailers of random entries are refused, never crash", async () => {
        const entry = fc.record({
            type: fc.integer({ min: 0, max: 6 }),
            value: fc.uint8Array({ maxLength: 80 }),
            algorithm: fc.integer({ min: 0, max: 4 }),
        })
        await fc.assert(
            fc.asyncProperty(fc.array(entry, { maxLength: 8 }), async (list) => {
                const entries = list.map((e) => {
                    const value = Buffer.from(e.value)
                    if (value.length > 0 && e.type >= 3) value[0] = e.algorithm
                    return encodeEntry(e.type, value)
                })
                const trailer = encodeTrailer(entries)
                await onlyImageErrors(async () => decodeTrailer(trailer))
                const bytes = Buffer.concat([header, payloadOf(16), trailer])
                expect(await onlyImageErrors(() => verify(bytes))).toBe("refused")
            }),
            { numRuns: 500 }
        )
    })

    it("GP-TM-04: no mutation of a signed image is accepted", async () => {
        const image = await signedImage({ payload: payloadOf(48) })
        const edit = fc.oneof(
            fc.record({ kind: fc.constant("set"), at: fc.nat(), value: fc.nat(255) }),
            fc.record({ kind: fc.constant("insert"), at: fc.nat(), value: fc.nat(255) }),
            fc.record({ kind: fc.constant("delete"), at: fc.nat(), value: fc.constant(0) })
        )
        await fc.assert(
            fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), async (edits) => {
                let bytes = Buffer.from(image)
                for (const e of edits) {
                    const at = e.at % (bytes.length + 1)
                    if (e.kind === "set" && at < bytes.length) bytes[at] = e.value
                    if (e.kind === "insert")
                        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([e.value]),
                            bytes.subarray(at)])
                    if (e.kind === "delete" && at < bytes.length)
                        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
                }
                const outcome = await onlyImageErrors(() => verify(bytes))
                expect(outcome === "refused" || bytes.equals(image)).toBe(true)
            }),
            { numRuns: 1000 }
        )
    })

    it("GP-TM-04: every image the signer makes verifies and returns its payload", async () => {
        await fc.assert(
            fc.asyncProperty(
                fc.uint8Array({ maxLength: 9000 }),
                fc.tuple(fc.nat(65535), fc.nat(65535), fc.nat(65535)),
                fc.integer({ min: 5, max: 64 }),
                async (raw, [major, minor, patch], counter) => {
                    const payload = Buffer.from(raw)
                    const version = `${major}.${minor}.${patch}`
                    const image = await signedImage({ payload, version, counter })

                    const verified = await verify(image)

                    expect(verified.payload).toEqual(payload)
                    expect(verified.header.version).toBe(version)
                    expect(verified.length).toBe(image.length)
                    expect(verified.header.payloadSize + HEADER_SIZE).toBeLessThan(image.length)
                }
            ),
            { numRuns: 60 }
        )
    })
})
