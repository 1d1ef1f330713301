/**
 * Per-chunk integrity (offer format 2, docs/update-format.md; GP-TM-05, GP-TM-18): the
 * offer signs the SHA-256 of a chunk-hash table, the device fetches the table before the
 * chunks and checks each chunk when it arrives, asks again for a changed one a bounded
 * number of times, and never writes it. Format 1 offers keep working.
 */

import { randomBytes } from "node:crypto"

import { afterAll, describe, expect, it } from "vitest"

import { SimCrypto } from "../../sim/crypto"
import { cleanupTestBoards } from "../../sim/testing"
import { CHUNK_RETRIES } from "../../ota/agent-download"
import { decodeTable, encodeTable, encodeTableRequest, WireError } from "../../ota/agent-wire"
import { chunkTableRef, offerForImage, signOffer } from "../../ota/host/offer-sign"
import {
    decodeOfferBody,
    encodeOfferBody,
    MAX_TABLE_ENTRIES,
    Offer,
    OfferError,
    OFFER_FORMAT_V1,
    OFFER_FORMAT_VERSION,
} from "../../ota/offer"
import { boot, keyA, Link, makeDevice, makeImage, newAgent, serve, step } from "./helpers"
import type { ServeOptions } from "./helpers"

afterAll(() => cleanupTestBoards())

const sim = new SimCrypto()
/** The test devices' update.chunkSize (helpers UPDATE). */
const CHUNK = 1024

function sample(over: Partial<Offer> = {}): Offer {
    return {
        sequence: 5,
        deviceClass: "bulwark-test",
        version: "2.0.0",
        securityCounter: 2,
        imageSize: 30000,
        imageDigest: Buffer.alloc(32, 0xcd),
        expiry: null,
        targets: ["dev-test"],
        ...over,
    }
}

function offerCheck(run: () => unknown): string {
    try {
        run()
        return "accepted"
    } catch (err) {
        expect(err).toBeInstanceOf(OfferError)
        return (err as OfferError).check
    }
}

describe("offer format 2: the chunk-table block", () => {
    it("GP-TM-18: encodes a table reference as format 2 and decodes it back", () => {
        const table = { chunkSize: CHUNK, digest: Buffer.alloc(32, 0x11) }
        const body = encodeOfferBody(sample({ chunkTable: table }))

        const decoded = decodeOfferBody(body)

        expect(body.readUInt16BE(4)).toBe(OFFER_FORMAT_VERSION)
        expect(decoded.offer).toEqual(sample({ chunkTable: table }))
        expect(decoded.size).toBe(body.length)
    })

    it("keeps writing and reading format 1 for an offer without a table", () => {
        const body = encodeOfferBody(sample())

        expect(body.readUInt16BE(4)).toBe(OFFER_FORMAT_V1)
        expect(decodeOfferBody(body).offer).toEqual(sample())
        expect(decodeOfferBody(body).offer.chunkTable).toBeUndefined()
    })

    it("GP-TM-05: refuses tables out of bounds and unknown format versions", () => {
        const digest = Buffer.alloc(32)
        const tooMany = { chunkSize: 100, digest: digest }
        const zero = { chunkSize: 0, digest: digest }
        const body = encodeOfferBody(sample({ chunkTable: { chunkSize: CHUNK, digest } }))
        const shrunk = Buffer.from(body)
        shrunk.writeUInt32BE(1, 68)
        const future = Buffer.from(body)
        future.writeUInt16BE(3, 4)

        const encodeWith = (chunkTable: { chunkSize: number; digest: Buffer }) =>
            encodeOfferBody(sample({ chunkTable }))
        expect(offerCheck(() => encodeWith(tooMany))).toBe("chunk-table")
        expect(offerCheck(() => encodeWith(zero))).toBe("chunk-table")
        expect(offerCheck(() => decodeOfferBody(shrunk))).toBe("chunk-table")
        expect(offerCheck(() => decodeOfferBody(future))).toBe("format-version")
        expect(30000 / 100).toBeGreaterThan(MAX_TABLE_ENTRIES)
    })

    it("decodes only tables whose length matches their entry count", () => {
        const table = encodeTable({ sequence: 9, chunkSize: 64, hashes: Buffer.alloc(96, 1) })

        expect(decodeTable(table, 8)).toMatchObject({ sequence: 9, chunkSize: 64 })
        expect(() => decodeTable(table.subarray(0, table.length - 1), 8)).toThrow(WireError)
        expect(() => decodeTable(table, 2)).toThrow(WireError)
        expect(() => decodeTable(encodeTableRequest(9), 8)).toThrow(WireError)
    })
})

interface Run {
    end: string
    link: Link
    served: number[]
    phase: string
}

/** Offers `image` with a chunk table of `tableSize` and serves it, recording offsets. */
async function run(tableSize: number, options: ServeOptions = {}): Promise<Run> {
    const board = await makeDevice()
    const image = await makeImage({ version: "2.0.0", counter: 2, payload: randomBytes(30000) })
    const offer = await offerForImage(image, { sequence: 10, chunkTableSize: tableSize })
    const decision = await boot(board)
    const link = new Link()
    const agent = newAgent(board, decision, link)
    await agent.start()
    const served: number[] = []
    const alter = (offset: number, data: Buffer) => {
        served.push(offset)
        return options.alter ? options.alter(offset, data) : data
    }
    const signed = await signOffer(offer, keyA)
    const first = await step(() => agent.handleOffer(signed))
    const end =
        first === "idle"
            ? await serve(agent, link, image, { ...options, alter, tableChunkSize: tableSize })
            : first
    const phase = agent.phase()
    board.close()
    return { end, link, served, phase }
}

describe("update agent with a chunk table", () => {
    it("GP-TM-18: fetches the table first, then downloads, verifies and installs", async () => {
        const r = await run(CHUNK)

        expect(r.end).toBe("reboot")
        expect(r.link.states()).toEqual(expect.arrayContaining(["accepted", "installing"]))
        expect(r.link.states().some((s) => s.startsWith("refused"))).toBe(false)
    })

    it("GP-TM-05: a chunk changed in transit is caught on arrival and asked again", async () => {
        let tampered = 0
        const alter = (offset: number, data: Buffer) => {
            if (offset !== 2 * CHUNK || tampered > 0) return data
            tampered++
            data[10] ^= 0x01
            return data
        }

        const r = await run(CHUNK, { alter })

        expect(tampered).toBe(1)
        expect(r.served.filter((o) => o === 2 * CHUNK).length).toBe(2)
        expect(r.end).toBe("reboot")
        expect(r.link.states()).not.toContain("refused:digest")
    })

    it("GP-TM-05: a chunk changed on every send is refused before the download ends", async () => {
        const alter = (offset: number, data: Buffer) => {
            if (offset === 2 * CHUNK) data[0] ^= 0xff
            return data
        }

        const r = await run(CHUNK, { alter })

        expect(r.link.states()).toContain("refused:chunk-digest")
        expect(r.served.filter((o) => o === 2 * CHUNK).length).toBe(CHUNK_RETRIES + 1)
        expect(Math.max(...r.served)).toBeLessThan(12 * CHUNK)
        expect(r.phase).toBe("idle")
    })

    it("GP-TM-05: a table not matching the signed digest is refused, no chunk asked", async () => {
        const alterTable = (hashes: Buffer) => {
            hashes[40] ^= 0x01
            return hashes
        }

        const r = await run(CHUNK, { alterTable })

        expect(r.link.states()).toContain("refused:chunk-table")
        expect(r.served).toEqual([])
        expect(r.phase).toBe("idle")
    })

    it("refuses an offer whose table chunks exceed the device's chunk size", async () => {
        const r = await run(2 * CHUNK)

        expect(r.link.states()).toEqual(["refused:chunk-size"])
        expect(r.served).toEqual([])
    })

    it("the table reference is the SHA-256 of the per-chunk hashes", async () => {
        const image = randomBytes(2500)
        const hashes = [0, 1024, 2048].map((at) => sim.sha256([image.subarray(at, at + 1024)]))

        const ref = chunkTableRef(image, 1024)

        expect(ref.digest).toEqual(sim.sha256([Buffer.concat(hashes)]))
    })
})
