/**
 * Generates the shared vector sets of the trust core: boot-state records (boot/state.ts),
 * image header and trailer decoding (boot/image-format.ts), update-offer decoding and
 * judging (ota/offer.ts), the download messages (ota/agent-wire.ts) and the signed telemetry
 * envelope's decoding and ordering (src/telemetry.ts). Expected outcomes are what the Node build computes; the hand-made
 * cases (torn, erased, forged, out of range) are chosen so each refusal path is taken.
 * Run: npx tsx test/vectors/gen-core.ts (deterministic: fixed keys and payloads).
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"

import { p256 } from "@noble/curves/nist.js"

import * as stateModule from "../../boot/state"
import * as imageFormat from "../../boot/image-format"
import * as offerModule from "../../ota/offer"
import * as wireModule from "../../ota/agent-wire"
import * as telemetryModule from "../../src/telemetry"
import { SimCrypto } from "../../sim/crypto"
import { anchorDigest } from "../../boot/anchor"
import { buildSignedImage } from "../../tools/signer"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { errorSummary, picked, VECTOR_FORMAT } from "./codec"
import { VECTORS_DIR } from "./node-runner"

const crypto = new SimCrypto()

/** A JSON value of the vector format for a result (Buffers as $hex). */
function toJson(value: any): any {
    if (value instanceof Buffer) return { $hex: value.toString("hex") }
    if (Array.isArray(value)) return value.map(toJson)
    if (value !== null && typeof value === "object") {
        const out: any = {}
        for (const k of Object.keys(value)) out[k] = toJson(value[k])
        return out
    }
    return value
}

interface Case {
    name: string
    call: string
    args: any[]
    expect?: any
    throws?: any
}

/** Runs `fn` on Node with the decoded arguments and records the outcome as the expectation. */
function makeCase(name: string, call: string, args: any[], fn: (...a: any[]) => any, decoded: any[]): Case {
    try {
        const result = fn(...decoded)
        // A check that returns nothing: the codec renders undefined as {"$undefined": true}.
        if (result === undefined) return { name, call, args, expect: { $undefined: true } }
        return { name, call, args, expect: toJson(result) }
    } catch (e) {
        return { name, call, args, throws: errorSummary(e) }
    }
}

function write(file: string, module: string, description: string, source: string, cases: Case[]) {
    const set = { format: VECTOR_FORMAT, module, description, source, cases }
    writeFileSync(join(VECTORS_DIR, file), JSON.stringify(set, null, 2) + "\n")
    process.stdout.write(`${file}: ${cases.length} cases\n`)
}

function bootStateSet(): Case[] {
    const cases: Case[] = []
    const states: stateModule.BootState[] = [
        { seq: 1, active: "a", pending: null, attempts: 0, event: "none", eventSlot: null },
        { seq: 7, active: "a", pending: "b", attempts: 2, event: "none", eventSlot: null },
        { seq: 4294967295, active: "b", pending: null, attempts: 0, event: "reverted", eventSlot: "a" },
        { seq: 2147483648, active: "b", pending: null, attempts: 0, event: "confirmed", eventSlot: "b" },
        { seq: 12, active: "a", pending: null, attempts: 0, event: "rescued", eventSlot: "a" },
    ]
    for (const s of states) {
        const args = [{ $crypto: true }, s]
        cases.push(makeCase(`encode seq ${s.seq} active ${s.active} event ${s.event}`, "encodeBootState", args,
            stateModule.encodeBootState, [crypto, s]))
    }
    const good = stateModule.encodeBootState(crypto, states[1])
    const decodeCase = (name: string, bytes: Buffer) =>
        cases.push(makeCase(name, "decodeBootState", [{ $crypto: true }, { $hex: bytes.toString("hex") }],
            stateModule.decodeBootState, [crypto, bytes]))
    decodeCase("decode a valid record with a pending trial", good)
    decodeCase("decode a record with seq 2^32-1 (no signed read)", stateModule.encodeBootState(crypto, states[2]))
    decodeCase("decode a record with event rescued (byte 5) for slot a", stateModule.encodeBootState(crypto, states[4]))
    decodeCase("an erased copy is ignored", Buffer.alloc(48, 0xff))
    const torn = Buffer.from(good)
    torn.fill(0xff, 20)
    decodeCase("a torn copy (program cut after 20 bytes) is ignored", torn)
    const flipped = Buffer.from(good)
    flipped[47] ^= 1
    decodeCase("a copy whose checksum has one bit flipped is ignored", flipped)
    decodeCase("a short read is ignored", good.subarray(0, 40))
    const forge = (mutate: (body: Buffer) => void) => {
        const body = Buffer.from(good.subarray(0, 16))
        mutate(body)
        return Buffer.concat([body, crypto.sha256([body])])
    }
    decodeCase("pending equal to active is refused even with a good checksum", forge((b) => (b[6] = b[5])))
    decodeCase("an unknown event is refused even with a good checksum", forge((b) => (b[12] = 9)))
    decodeCase("the event byte after the last event (6) is refused", forge((b) => (b[12] = 6)))
    decodeCase("a slot byte of 2 is refused", forge((b) => (b[5] = 2)))
    decodeCase("non-zero reserved bytes are refused", forge((b) => (b[15] = 1)))
    decodeCase("attempts without a pending slot are refused", forge((b) => {
        b[6] = 0xff
        b[7] = 1
    }))
    decodeCase("another record version is refused", forge((b) => (b[4] = 2)))
    return cases
}

async function imageSet(): Promise<Case[]> {
    const cases: Case[] = []
    const priv = Buffer.alloc(32, 0x11)
    const pub = Buffer.from(p256.getPublicKey(priv, false))
    const key: ReleasePrivateKey = {
        algorithm: "ecdsa-p256-sha256",
        keys: [{ algorithm: "ecdsa-p256-sha256", privateKey: priv, publicKey: pub }],
        anchor: anchorDigest(crypto, [{ algorithm: "ecdsa-p256-sha256", key: pub }]),
    }
    const image = await buildSignedImage({
        payload: Buffer.from("vector payload ".repeat(8)),
        version: "2.10.300",
        counter: 7,
        deviceClass: "bulwark-vectors",
        key,
    })
    const header = image.subarray(0, imageFormat.HEADER_SIZE)
    const head = (name: string, bytes: Buffer) =>
        cases.push(makeCase(name, "decodeHeader", [{ $hex: bytes.toString("hex") }], imageFormat.decodeHeader, [bytes]))
    head("decode the header of a signed image", header)
    const mutate = (at: number, value: number) => {
        const b = Buffer.from(header)
        b[at] = value
        return b
    }
    head("a wrong magic is refused", mutate(0, 0x41))
    head("another format version is refused", mutate(4, 9))
    for (let at = 5; at < imageFormat.HEADER_SIZE; at += 13) head(`byte ${at} set to 0xff`, mutate(at, 0xff))
    head("a short header is refused", header.subarray(0, 50))
    for (const v of ["0.0.0", "1.2.3", "65535.65535.65535", "1.2", "01.2.3", "1.2.3.4", "65536.0.0", "a.b.c", ""]) {
        cases.push(makeCase(`parseVersion "${v}"`, "parseVersion", [v], imageFormat.parseVersion, [v]))
    }
    for (const [a, b] of [["1.2.3", "1.2.3"], ["1.10.0", "1.9.9"], ["2.0.0", "10.0.0"], ["0.0.1", "0.0.0"]]) {
        cases.push(makeCase(`compareVersions ${a} ${b}`, "compareVersions", [a, b], imageFormat.compareVersions, [a, b]))
    }
    return cases
}

function offerSet(): Case[] {
    const cases: Case[] = []
    const offer: offerModule.Offer = {
        sequence: 1733000000,
        deviceClass: "bulwark-vectors",
        version: "2.0.0",
        securityCounter: 2,
        imageSize: 130000,
        imageDigest: Buffer.alloc(32, 0xab),
        expiry: 1900000000,
        targets: ["dev-0123456789ab", "sensor-2"],
    }
    const body = offerModule.encodeOfferBody(offer)
    const decode = (name: string, bytes: Buffer) =>
        cases.push(makeCase(name, "decodeOfferBody", [{ $hex: bytes.toString("hex") }], offerModule.decodeOfferBody, [bytes]))
    decode("decode a targeted offer with an expiry", body)
    decode("decode an offer for the whole class, no expiry",
        offerModule.encodeOfferBody({ ...offer, expiry: null, targets: [] }))
    decode("a truncated body is refused", body.subarray(0, body.length - 3))
    for (let at = 0; at < offerModule.OFFER_FIXED_SIZE; at += 7) {
        const b = Buffer.from(body)
        b[at] ^= 0xff
        decode(`byte ${at} inverted`, b)
    }
    const facts: offerModule.DeviceFacts = {
        deviceId: "sensor-2",
        deviceClass: "bulwark-vectors",
        runningVersion: "1.0.0",
        otpCounter: 1,
        storedSequence: 1732999999,
        slotSize: 262144,
        wallTime: 1800000000,
    }
    const judge = (name: string, o: offerModule.Offer, f: offerModule.DeviceFacts) =>
        cases.push(makeCase(name, "judgeOffer", [toJson(o), f], offerModule.judgeOffer, [o, f]))
    judge("a fitting offer is taken", offer, facts)
    judge("another device class", offer, { ...facts, deviceClass: "other" })
    judge("not among the targets", offer, { ...facts, deviceId: "sensor-3" })
    judge("a replayed sequence", offer, { ...facts, storedSequence: offer.sequence })
    judge("expired by the device's clock", offer, { ...facts, wallTime: 1900000000 })
    judge("expiry not checked when the time is unknown", offer, { ...facts, wallTime: null })
    judge("the same version is a downgrade", offer, { ...facts, runningVersion: "2.0.0" })
    judge("below the OTP counter", offer, { ...facts, otpCounter: 3 })
    judge("larger than the slot", offer, { ...facts, slotSize: 129999 })
    return cases
}

/** Range and chunk requests and chunks: encoding, decoding, every refusal, range clipping. */
function wireSet(): Case[] {
    const cases: Case[] = []
    const hex = (b: Buffer) => ({ $hex: b.toString("hex") })
    const range = { sequence: 1733000000, offset: 2147483648, chunkSize: 4096, count: 8 }
    cases.push(makeCase("encode a range request", "encodeRangeRequest", [range],
        wireModule.encodeRangeRequest, [range]))
    const good = wireModule.encodeRangeRequest(range)
    const decode = (name: string, bytes: Buffer) =>
        cases.push(makeCase(name, "decodeRangeRequest", [hex(bytes)],
            wireModule.decodeRangeRequest, [bytes]))
    const raw = (chunkSize: number, count: number) => {
        const bytes = Buffer.from(good)
        bytes.writeUInt32BE(chunkSize, 12)
        bytes.writeUInt32BE(count, 16)
        return bytes
    }
    const magic = Buffer.from(good)
    magic.write("BWRQ", 0)
    decode("decode a range request", good)
    decode("decode 16 chunks of 4 KiB, the byte bound", raw(4096, 16))
    decode("decode one chunk of MAX_CHUNK", raw(65536, 1))
    decode("refuse a short range request", good.subarray(0, 19))
    decode("refuse a long range request", Buffer.concat([good, Buffer.alloc(1)]))
    decode("refuse another magic", magic)
    decode("refuse chunk size 0", raw(0, 1))
    decode("refuse a chunk size above MAX_CHUNK", raw(65537, 1))
    decode("refuse count 0", raw(1024, 0))
    decode("refuse a count above MAX_RANGE_CHUNKS", raw(1, 17))
    decode("refuse a range above MAX_RANGE_BYTES", raw(8192, 16))
    const clip = (name: string, r: wireModule.RangeRequest, imageSize: number) =>
        cases.push(makeCase(name, "rangeChunks", [r, imageSize], wireModule.rangeChunks,
            [r, imageSize]))
    const small = { sequence: 9, offset: 1000, chunkSize: 700, count: 5 }
    clip("a range inside the image", small, 9000)
    clip("a range clipped at the image end, the last chunk short", small, 2500)
    clip("a range starting at the image end asks for nothing", small, 1000)
    const single = wireModule.encodeRequest({ sequence: 9, offset: 4096, length: 4096 })
    cases.push(makeCase("decode a single-chunk request", "decodeRequest", [hex(single)],
        wireModule.decodeRequest, [single]))
    const chunk = wireModule.encodeChunk({ sequence: 9, offset: 4096, data: Buffer.from("abc") })
    cases.push(makeCase("decode a chunk", "decodeChunk", [hex(chunk)],
        wireModule.decodeChunk, [chunk]))
    const lying = chunk.subarray(0, chunk.length - 1)
    cases.push(makeCase("refuse a chunk shorter than its length field", "decodeChunk",
        [hex(lying)], wireModule.decodeChunk, [lying]))
    return cases
}

/**
 * Telemetry envelopes (src/telemetry.ts): a genuine one signed with a fixed test key, every
 * "format" refusal of the decoder, the encoder, and the (boot, seq) ordering rule. The
 * signature itself is not checked here: the device target has no ECDSA (docs/telemetry.md).
 */
function telemetrySet(): Case[] {
    const cases: Case[] = []
    const hex = (b: Buffer) => ({ $hex: b.toString("hex") })
    const priv = Buffer.alloc(32, 0x41)
    const pub = Buffer.from(p256.getPublicKey(priv, false))
    const seal = (signed: Buffer) => {
        const message = telemetryModule.telemetryMessage(signed)
        const signature = Buffer.from(p256.sign(message, priv, { lowS: true }))
        if (!p256.verify(signature, message, pub)) throw new Error("telemetry vector signature")
        return Buffer.concat([signed, signature])
    }
    const body = Buffer.from(
        '{"v":1,"version":"1.2.0","slot":"a","trial":false,"uptimeMs":300,"selfTest":true,"update":"idle"}'
    )
    const fields: telemetryModule.TelemetryMessage = {
        deviceId: "dev-0123456789ab", boot: 13, seq: 1, time: 1800000000, body: body,
    }
    const good = seal(telemetryModule.encodeTelemetryBody(fields))
    const idLength = fields.deviceId.length
    const at = 6 + idLength
    const decode = (name: string, bytes: Buffer, pick?: string[]) => {
        const c: any = makeCase(name, "decodeTelemetry", [hex(bytes)],
            telemetryModule.decodeTelemetry, [bytes])
        if (pick) c.pick = pick
        if (pick && c.expect !== undefined)
            c.expect = toJson(picked(c, telemetryModule.decodeTelemetry(bytes)))
        cases.push(c)
    }
    /** The genuine envelope with `edit` applied to a copy. */
    const mutate = (edit: (b: Buffer) => void) => {
        const b = Buffer.from(good)
        edit(b)
        return b
    }
    /** An envelope whose header is edited and whose signature is any 64 bytes. */
    const raw = (id: Buffer, boot: number, seq: number, time: number, bodyLength: number,
        bodyBytes: Buffer) => {
        const head = Buffer.from("BWTM\x01\x00", "latin1")
        head[5] = id.length
        const numbers = Buffer.alloc(14)
        numbers.writeUInt32BE(boot, 0)
        numbers.writeUInt32BE(seq, 4)
        numbers.writeUInt32BE(time, 8)
        numbers.writeUInt16BE(bodyLength, 12)
        return Buffer.concat([head, id, numbers, bodyBytes, Buffer.alloc(64, 0x5a)])
    }

    decode("decode a genuine envelope", good)
    decode("decode boot and sequence at 2^32-1 and time 0", raw(Buffer.from("d"), 4294967295,
        4294967295, 0, 2, Buffer.from("{}")))
    decode("decode a device id of 64 characters and an empty body",
        raw(Buffer.from("a.b-".repeat(16)), 2147483648, 2147483649, 4294967295, 0, Buffer.alloc(0)))
    decode("decode a body of TELEMETRY_MAX_BODY bytes", raw(Buffer.from("dev-1"), 7, 9, 1,
        telemetryModule.TELEMETRY_MAX_BODY, Buffer.alloc(telemetryModule.TELEMETRY_MAX_BODY, 0x20)),
        ["message.deviceId", "message.boot", "message.seq", "message.time", "signature"])
    decode("refuse an envelope truncated by one byte", good.subarray(0, good.length - 1))
    decode("refuse an envelope without its signature", good.subarray(0, good.length - 64))
    decode("refuse an envelope shorter than the fixed fields", good.subarray(0, 20))
    decode("refuse an empty envelope", Buffer.alloc(0))
    decode("refuse an envelope extended by one byte", Buffer.concat([good, Buffer.alloc(1)]))
    decode("refuse another magic", mutate((b) => b.write("BWAT", 0)))
    decode("refuse version 0", mutate((b) => (b[4] = 0)))
    decode("refuse version 2", mutate((b) => (b[4] = 2)))
    decode("refuse device id length 0", mutate((b) => (b[5] = 0)))
    decode("refuse device id length 65", raw(Buffer.from("a".repeat(65)), 1, 1, 0, 0, Buffer.alloc(0)))
    decode("refuse a device id that runs into the fields after it", mutate((b) => (b[5] = 64)))
    const short = raw(Buffer.from("d"), 1, 1, 0, 0, Buffer.alloc(0))
    short[5] = 2
    decode("refuse a device id length that leaves no room for the fixed fields", short)
    decode("refuse an upper-case device id", mutate((b) => (b[6] = 0x44)))
    decode("refuse a device id with an underscore", mutate((b) => (b[9] = 0x5f)))
    decode("refuse a device id with a byte above 0x7f", mutate((b) => (b[7] = 0xe9)))
    decode("refuse boot number 0", mutate((b) => b.writeUInt32BE(0, at)))
    decode("refuse sequence 0", mutate((b) => b.writeUInt32BE(0, at + 4)))
    decode("refuse a body length above TELEMETRY_MAX_BODY",
        raw(Buffer.from("dev-1"), 1, 1, 0, telemetryModule.TELEMETRY_MAX_BODY + 1, Buffer.alloc(0)))
    decode("refuse a body length one short of the body",
        mutate((b) => b.writeUInt16BE(body.length - 1, at + 12)))
    decode("refuse a body length one past the body",
        mutate((b) => b.writeUInt16BE(body.length + 1, at + 12)))

    const encode = (name: string, m: telemetryModule.TelemetryMessage) =>
        cases.push(makeCase(name, "encodeTelemetryBody", [{ ...m, body: hex(m.body) }],
            telemetryModule.encodeTelemetryBody, [m]))
    encode("encode the signed part of the genuine envelope", fields)
    encode("refuse to encode boot number 0", { ...fields, boot: 0 })
    encode("refuse to encode a device id with a slash", { ...fields, deviceId: "dev/1" })

    const order = (name: string, position: telemetryModule.TelemetryPosition,
        after: telemetryModule.TelemetryPosition | null) =>
        cases.push(makeCase(name, "checkTelemetryOrder", [position, after],
            telemetryModule.checkTelemetryOrder, [position, after]))
    order("accept any position when none was seen", { boot: 1, seq: 1 }, null)
    order("accept the next sequence of the same boot", { boot: 12, seq: 408 }, { boot: 12, seq: 407 })
    order("accept a gap in the sequence", { boot: 12, seq: 500 }, { boot: 12, seq: 407 })
    order("accept a new boot starting again at sequence 1", { boot: 13, seq: 1 }, { boot: 12, seq: 407 })
    order("accept a boot past 2^31 after one below it", { boot: 2147483648, seq: 1 },
        { boot: 2147483647, seq: 4294967295 })
    order("refuse the last position as replayed", { boot: 12, seq: 407 }, { boot: 12, seq: 407 })
    order("refuse the last position at 2^32-1 as replayed", { boot: 4294967295, seq: 4294967295 },
        { boot: 4294967295, seq: 4294967295 })
    order("refuse an older sequence of the same boot", { boot: 12, seq: 406 }, { boot: 12, seq: 407 })
    order("refuse an older boot with a higher sequence", { boot: 11, seq: 9000 }, { boot: 12, seq: 407 })
    order("refuse a boot below 2^31 after one past it", { boot: 2147483647, seq: 4294967295 },
        { boot: 2147483648, seq: 1 })
    return cases
}

async function main(): Promise<void> {
    write("boot-state.json", "boot/state",
        "Boot-state records (boot/state.ts): encoding, and decoding of valid, erased, torn, flipped and forged copies",
        "computed by the Node build of boot/state.ts; forged copies carry a correct checksum so the field checks are reached (test/vectors/gen-core.ts)",
        bootStateSet())
    write("image-format.json", "boot/image-format",
        "Image header decoding and version handling (boot/image-format.ts): a signed image's header, mutated headers, semantic versions",
        "computed by the Node build from an image signed with a fixed test key (test/vectors/gen-core.ts)",
        await imageSet())
    write("offer.json", "ota/offer",
        "Update offers (ota/offer.ts): body decoding with mutations, and every judgement an offer can get",
        "computed by the Node build of ota/offer.ts (test/vectors/gen-core.ts)",
        offerSet())
    write("agent-wire.json", "ota/agent-wire",
        "Download messages (ota/agent-wire.ts): range requests with every refusal, range clipping, chunk requests and chunks",
        "computed by the Node build of ota/agent-wire.ts (test/vectors/gen-core.ts)",
        wireSet())
    write("telemetry.json", "src/telemetry",
        "Signed telemetry envelopes (src/telemetry.ts): decoding of a genuine envelope, every format refusal, the encoder, and the (boot, seq) ordering rule; no signature check",
        "computed by the Node build of src/telemetry.ts from an envelope signed with a fixed test key (test/vectors/gen-core.ts)",
        telemetrySet())
}

await main()
