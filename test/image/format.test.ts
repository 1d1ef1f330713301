/**
 * The image header codec and semantic versions (docs/image-format.md): fields round-trip,
 * every field the parser does not fully understand is refused with its named check, and
 * versions compare numerically (used by the update agent against downgrades, GP-TM-06).
 */

import { describe, expect, it } from "vitest"
import { compareVersions, parseImageHeader, parseVersion } from "../../boot/image"
import {
    decodeHeader,
    encodeHeader,
    HEADER_SIZE,
    HeaderFields,
    ImageError,
    signedMessage,
} from "../../boot/image-format"
import { writeU16 } from "../../boot/bytes"
import { bufferSource } from "../../tools/signer"
import { checkOf } from "./helpers"

const FIELDS: HeaderFields = {
    imageType: 1,
    deviceClass: "bulwark-demo-sensor",
    version: "65535.0.7",
    securityCounter: 64,
    payloadSize: 0xffffffff,
}

function checkOfSync(fn: () => unknown): string {
    try {
        fn()
        return "accepted"
    } catch (err) {
        if (err instanceof ImageError) return err.check
        throw err
    }
}

describe("image header", () => {
    it("round-trips every field at its bounds", () => {
        const head = encodeHeader(FIELDS)

        const header = decodeHeader(head)

        expect(head.length).toBe(HEADER_SIZE)
        expect(header).toEqual({ ...FIELDS, formatVersion: 1, headerSize: HEADER_SIZE })
    })

    it("lays out magic, format version and header size at fixed offsets", () => {
        const head = encodeHeader(FIELDS)

        expect(head.subarray(0, 4).toString()).toBe("BWIM")
        expect(head.readUInt16BE(4)).toBe(1)
        expect(head.readUInt16BE(6)).toBe(96)
        expect(head.subarray(32, 51).toString()).toBe("bulwark-demo-sensor")
        expect(head.subarray(51, 96)).toEqual(Buffer.alloc(45))
    })

    it("GP-TM-04: refuses each field it does not fully understand, naming it", () => {
        const cases: [number, number, string][] = [
            [0, 0x42 ^ 1, "magic"],
            [5, 2, "format-version"],
            [7, 97, "header-size"],
            [9, 2, "image-type"],
            [11, 1, "flags"],
            [26, 1, "reserved"],
            [31, 1, "reserved"],
            [32, 0, "class-name"],
            [32, 0x41, "class-name"],
            [95, 0x61, "class-name"],
            [19, 65, "security-counter"],
        ]
        for (const [offset, value, check] of cases) {
            const head = encodeHeader(FIELDS)
            head[offset] = value
            expect(checkOfSync(() => decodeHeader(head)), `offset ${offset}`).toBe(check)
        }
    })

    it("refuses a class name with bytes after its terminating NUL", () => {
        const head = encodeHeader({ ...FIELDS, deviceClass: "abc" })
        head[40] = 0x61

        expect(checkOfSync(() => decodeHeader(head))).toBe("class-name")
    })

    it("accepts a class name filling all 64 bytes", () => {
        const name = "a".repeat(64)

        expect(decodeHeader(encodeHeader({ ...FIELDS, deviceClass: name })).deviceClass).toBe(name)
    })

    it("refuses to encode what it would refuse to decode", () => {
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, imageType: 2 }))).toBe("image-type")
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, deviceClass: "A" }))).toBe("class-name")
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, deviceClass: "" }))).toBe("class-name")
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, securityCounter: 65 }))).toBe(
            "security-counter"
        )
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, securityCounter: 1.5 }))).toBe(
            "security-counter"
        )
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, payloadSize: 2 ** 32 }))).toBe(
            "payload-size"
        )
        expect(checkOfSync(() => encodeHeader({ ...FIELDS, version: "1.2" }))).toBe("version")
    })

    it("parseImageHeader reads the header alone and refuses short sources", async () => {
        const head = encodeHeader(FIELDS)

        expect((await parseImageHeader(bufferSource(head))).version).toBe("65535.0.7")
        expect(await checkOf(parseImageHeader(bufferSource(head.subarray(0, 95))))).toBe(
            "truncated"
        )
    })

    it("encodes version parts as three big-endian u16", () => {
        const head = encodeHeader({ ...FIELDS, version: "258.3.4" })
        writeU16(head, 24, 5)

        expect(decodeHeader(head).version).toBe("258.3.5")
        expect(head.readUInt16BE(20)).toBe(258)
    })
})

describe("semantic versions", () => {
    it("parses X.Y.Z with parts 0 to 65535", () => {
        expect(parseVersion("0.0.0")).toEqual({ major: 0, minor: 0, patch: 0 })
        expect(parseVersion("65535.10.9")).toEqual({ major: 65535, minor: 10, patch: 9 })
    })

    it("refuses everything else", () => {
        const bad = ["", "1", "1.2", "1.2.3.4", "1.2.x", "01.2.3", "1.2.65536", "-1.2.3",
            "1..3", " 1.2.3", "1.2.3 ", "1.2.3-rc1", "１.2.3", "1.2.+3", "999999.0.0"]
        for (const text of bad) expect(checkOfSync(() => parseVersion(text)), text).toBe("version")
    })

    it("compares numerically, not as text", () => {
        expect(compareVersions("1.10.0", "1.9.9")).toBe(1)
        expect(compareVersions("1.9.9", "1.10.0")).toBe(-1)
        expect(compareVersions("2.0.0", "2.0.0")).toBe(0)
        expect(compareVersions("0.0.1", "0.0.0")).toBe(1)
        expect(compareVersions("3.0.0", "2.65535.65535")).toBe(1)
    })
})

describe("signed message", () => {
    it("is the domain label, the digest and the key digest (80 bytes)", () => {
        const digest = Buffer.alloc(32, 1)
        const keyDigest = Buffer.alloc(32, 2)

        const message = signedMessage(digest, keyDigest)

        expect(message.length).toBe(80)
        expect(message.subarray(0, 16).toString()).toBe("bulwark-image-v1")
        expect(message.subarray(16, 48)).toEqual(digest)
        expect(message.subarray(48)).toEqual(keyDigest)
    })
})
