/**
 * Generates the shared vector sets of the trust core: boot-state records (boot/state.ts),
 * image header and trailer decoding (boot/image-format.ts), update-offer decoding and
 * judging (ota/offer.ts) and the download messages (ota/agent-wire.ts). Expected outcomes are what the Node build computes; the hand-made
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
import { SimCrypto } from "../../sim/crypto"
import { anchorDigest } from "../../boot/anchor"
import { buildSignedImage } from "../../tools/signer"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { errorSummary, VECTOR_FORMAT } from "./codec"
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
}

await main()
