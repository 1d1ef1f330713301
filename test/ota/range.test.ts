/**
 * Range requests (ota/agent-wire.ts, docs/update-format.md): one 20-byte BWRR message asks
 * for a run of chunks, so a download costs the device one GP-TM-46 "publishes" token per
 * refill of half its window instead of one per chunk. The decoder refuses every malformed
 * range with WireError "request" (GP-TM-54); the agent keeps its window and in-order writes
 * (GP-TM-18); the publisher answers a range with exactly its chunks, clipped at the image end,
 * and still answers the single-chunk requests of older devices.
 */

import { randomBytes } from "node:crypto"

import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { DEFAULT_WINDOW } from "../../ota/agent"
import {
    decodeChunk,
    decodeRangeRequest,
    encodeChunk,
    encodeRangeRequest,
    encodeRequest,
    encodeStatus,
    encodeTableRequest,
    rangeChunks,
    Chunk,
    MAX_CHUNK,
    MAX_RANGE_BYTES,
    MAX_RANGE_CHUNKS,
    RANGE_REQUEST_MAGIC,
    RANGE_REQUEST_SIZE,
    RangeRequest,
    WireError,
} from "../../ota/agent-wire"
import { DeviceResult, OperatorCredentials, publishUpdate } from "../../ota/host/publisher"
import { RunningBroker } from "../../sim/broker"
import { cleanupTestBoards } from "../../sim/testing"
import { boot, keyA, Link, makeDevice, makeImage, newAgent, offerFor, serve, step } from "./helpers"
import { UPDATE } from "./helpers"
import { FakeDevice, fakeDevice, OperatorBroker, operatorBroker } from "./fake-device"
import { Fleet, removeTempDirs } from "../transport/fixtures"

const SAMPLE: RangeRequest = {
    sequence: 0x01020304,
    offset: 0xa0b0c0d0,
    chunkSize: 4096,
    count: 8,
}

/** The check of the WireError `decode` throws, or "decoded". Any other throw fails. */
function refusal(bytes: Buffer): string {
    try {
        decodeRangeRequest(bytes)
        return "decoded"
    } catch (err) {
        expect(err).toBeInstanceOf(WireError)
        return (err as WireError).check
    }
}

/** A range request whose fields are written raw, bypassing any check. */
function rawRange(chunkSize: number, count: number): Buffer {
    const bytes = encodeRangeRequest(SAMPLE)
    bytes.writeUInt32BE(chunkSize, 12)
    bytes.writeUInt32BE(count, 16)
    return bytes
}

describe("range request format", () => {
    it("GP-TM-18: encodes 20 bytes, magic BWRR, big-endian fields, and decodes them back", () => {
        const bytes = encodeRangeRequest(SAMPLE)

        const back = decodeRangeRequest(bytes)

        expect(bytes.length).toBe(RANGE_REQUEST_SIZE)
        expect(bytes.toString("hex")).toBe(
            Buffer.from(RANGE_REQUEST_MAGIC).toString("hex") + "01020304a0b0c0d00000100000000008"
        )
        expect(back).toEqual(SAMPLE)
    })

    it("GP-TM-54: a malformed range request is refused as request", () => {
        const good = encodeRangeRequest(SAMPLE)
        const wrongMagic = Buffer.from(good)
        wrongMagic.write("BWRQ", 0)
        const cases: [string, Buffer][] = [
            ["short", good.subarray(0, RANGE_REQUEST_SIZE - 1)],
            ["long", Buffer.concat([good, Buffer.alloc(1)])],
            ["chunk request size", good.subarray(0, 16)],
            ["wrong magic", wrongMagic],
            ["table request", encodeTableRequest(SAMPLE.sequence)],
            ["chunk size 0", rawRange(0, 1)],
            ["chunk size above MAX_CHUNK", rawRange(MAX_CHUNK + 1, 1)],
            ["count 0", rawRange(1024, 0)],
            ["count above MAX_RANGE_CHUNKS", rawRange(1, MAX_RANGE_CHUNKS + 1)],
            ["more than MAX_RANGE_BYTES", rawRange(8192, MAX_RANGE_CHUNKS)],
            ["MAX_CHUNK twice", rawRange(MAX_CHUNK, 2)],
        ]

        const checks = cases.map(([name, bytes]) => name + ": " + refusal(bytes))

        expect(checks).toEqual(cases.map(([name]) => name + ": request"))
        expect(refusal(rawRange(4096, MAX_RANGE_CHUNKS))).toBe("decoded")
        expect(refusal(rawRange(MAX_CHUNK, 1))).toBe("decoded")
    })

    it("GP-TM-54: arbitrary and mutated bytes decode within the bounds or fail as request", () => {
        const good = encodeRangeRequest(SAMPLE)
        const mutated = fc
            .array(fc.tuple(fc.nat(RANGE_REQUEST_SIZE - 1), fc.integer({ min: 0, max: 255 })), {
                maxLength: 6,
            })
            .map((edits) => {
                const bytes = Buffer.from(good)
                for (const [at, value] of edits) bytes[at] = value
                return bytes
            })
        const noise = fc.uint8Array({ maxLength: 48 }).map((u) => Buffer.from(u))

        fc.assert(
            fc.property(fc.oneof(mutated, noise), (bytes) => {
                let range: RangeRequest
                try {
                    range = decodeRangeRequest(bytes)
                } catch (err) {
                    expect(err).toBeInstanceOf(WireError)
                    expect((err as WireError).check).toBe("request")
                    return
                }
                expect(bytes.length).toBe(RANGE_REQUEST_SIZE)
                expect(range.chunkSize).toBeGreaterThanOrEqual(1)
                expect(range.count).toBeGreaterThanOrEqual(1)
                expect(range.count).toBeLessThanOrEqual(MAX_RANGE_CHUNKS)
                expect(range.count * range.chunkSize).toBeLessThanOrEqual(MAX_RANGE_BYTES)
                expect(encodeRangeRequest(range)).toEqual(bytes)
            }),
            { numRuns: 1000 }
        )
    })

    it("GP-TM-18: a range stands for consecutive chunks in the image, the last one short", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 1, max: 4096 }),
                fc.integer({ min: 1, max: MAX_RANGE_CHUNKS }),
                fc.nat(70000),
                fc.nat(70000),
                (chunkSize, count, offset, imageSize) => {
                    const range = { sequence: 3, offset, chunkSize, count }

                    const chunks = rangeChunks(range, imageSize)

                    const left = imageSize - offset
                    const wanted = left <= 0 ? 0 : Math.ceil(left / chunkSize)
                    expect(chunks.length).toBe(Math.min(count, wanted))
                    let at = offset
                    for (const c of chunks) {
                        expect(c).toEqual({ sequence: 3, offset: at, length: c.length })
                        expect(c.length).toBe(Math.min(chunkSize, imageSize - at))
                        at += c.length
                    }
                }
            ),
            { numRuns: 500 }
        )
    })
})

/** A link that loses the `nth` request the agent publishes (dropped before the publisher). */
class LossyLink extends Link {
    lost: Buffer[] = []
    private seen = 0

    constructor(private readonly nth: number) {
        super()
    }

    override async publish(suffix: string, payload: Buffer, reliable: boolean): Promise<void> {
        if (suffix === "ota/request" && ++this.seen === this.nth) {
            this.lost.push(payload)
            return
        }
        await super.publish(suffix, payload, reliable)
    }
}

describe("update agent: range requests", () => {
    afterAll(() => cleanupTestBoards())

    it("GP-TM-46: a download of N chunks asks with clearly fewer publishes than N", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: randomBytes(30000) })
        const chunks = Math.ceil(v2.length / UPDATE.chunkSize)
        const link = new Link()
        const agent = newAgent(board, await boot(board), link)
        await agent.start()
        await agent.handleOffer(await offerFor(v2, 10))

        const end = await serve(agent, link, v2)

        expect(end).toBe("reboot")
        expect(chunks).toBeGreaterThan(25)
        expect(link.requestPublishes).toBeGreaterThan(0)
        expect(link.requestPublishes * 3).toBeLessThanOrEqual(chunks)
        expect((await boot(await board.powerCycle())).version).toBe("2.0.0")
    })

    it("GP-TM-18: a lost range is asked again once a chunk past the gap comes", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: randomBytes(20000) })
        const link = new LossyLink(2)
        const agent = newAgent(board, await boot(board), link)
        await agent.start()
        await agent.handleOffer(await offerFor(v2, 10))

        const end = await serve(agent, link, v2)

        expect(link.lost).toHaveLength(1)
        expect(end).toBe("reboot")
        expect((await boot(await board.powerCycle())).version).toBe("2.0.0")
    })

    it("GP-TM-18: asks for at most the window, in order, one range per half window", async () => {
        const board = await makeDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: randomBytes(20000) })
        const link = new Link()
        const agent = newAgent(board, await boot(board), link)
        await agent.start()
        await agent.handleOffer(await offerFor(v2, 10))
        const asked: RangeRequest[] = []
        const inFlight: number[] = []
        let requestedTo = 0

        for (let rounds = 0; agent.phase() === "downloading" && rounds < 200; rounds++) {
            const next = link.requests.shift()
            if (next === undefined) break
            const range = decodeRangeRequest(next)
            asked.push(range)
            expect(range.offset).toBe(requestedTo)
            requestedTo = Math.min(v2.length, range.offset + range.count * range.chunkSize)
            inFlight.push(Math.ceil((requestedTo - agent.progress()) / UPDATE.chunkSize))
            for (const c of rangeChunks(range, v2.length)) {
                const data = v2.subarray(c.offset, c.offset + c.length)
                const chunk = encodeChunk({ sequence: 10, offset: c.offset, data })
                await step(() => agent.handleChunk(chunk))
            }
        }

        expect(requestedTo).toBe(v2.length)
        expect(asked[0].count).toBe(DEFAULT_WINDOW)
        expect(asked.every((r) => r.chunkSize === UPDATE.chunkSize)).toBe(true)
        expect(asked.slice(1, -1).every((r) => r.count === DEFAULT_WINDOW / 2)).toBe(true)
        expect(Math.max(...inFlight)).toBeLessThanOrEqual(DEFAULT_WINDOW)
    })
})

let fleet: Fleet
let broker: RunningBroker
let operator: OperatorCredentials
let ob: OperatorBroker

describe("publisher: range requests", () => {
    beforeAll(async () => {
        ob = await operatorBroker("OTA range fleet")
        ;({ fleet, broker, operator } = ob)
    })

    afterAll(async () => {
        await broker?.close()
        removeTempDirs()
    })

    /** A device session (host-made key) subscribed to its OTA topics. */
    function rangeDevice(id: string): Promise<FakeDevice> {
        const topics = [{ suffix: "ota/offer", qos: 1 as const }, { suffix: "ota/chunk", qos: 0 as const }]
        return fakeDevice(ob, id, topics, 65536)
    }

    it("GP-TM-18: the publisher answers a range with exactly its chunks, no others", async () => {
        const id = "dev-range"
        const image = await makeImage({ version: "2.0.0", counter: 2, payload: randomBytes(9000) })
        const device = await rangeDevice(id)
        const campaign: Promise<DeviceResult[]> = publishUpdate({
            broker: { host: "127.0.0.1", port: broker.port },
            serverName: "localhost",
            caPem: fleet.ca.certPem,
            operator,
            image,
            key: keyA,
            devices: [id],
            deviceKeys: { [id]: device.signer.publicKey },
            sequence: 77,
            timeoutMs: 30000,
        })
        await device.next("ota/offer")
        const ask = (request: Buffer) =>
            device.session.publish("bulwark/" + id + "/ota/request", request, 0)
        const chunksOf = async (count: number): Promise<Chunk[]> => {
            const out: Chunk[] = []
            for (let i = 0; i < count; i++)
                out.push(decodeChunk((await device.next("ota/chunk")).payload))
            return out
        }
        const range = (offset: number, chunkSize: number, count: number, sequence = 77) =>
            encodeRangeRequest({ sequence, offset, chunkSize, count })

        await ask(range(1000, 700, 5))
        const middle = await chunksOf(5)
        await ask(range(image.length - 1000, 700, 4))
        const end = await chunksOf(2)
        await ask(range(image.length, 700, 4))
        await ask(range(0, 700, 4, 76))
        await ask(encodeRequest({ sequence: 77, offset: 40, length: 10 }))
        const single = await chunksOf(1)
        await device.session.publish(
            "bulwark/" + id + "/ota/status",
            device.signer.envelope(
                encodeStatus({ state: "refused", seq: 77, check: "test-done" }, "1.0.0"),
                { boot: 1, seq: 1 }
            ),
            1
        )
        const [result] = await campaign
        await device.session.close()

        expect(middle.map((c) => [c.offset, c.data.length])).toEqual([
            [1000, 700], [1700, 700], [2400, 700], [3100, 700], [3800, 700],
        ])
        expect(end.map((c) => [c.offset, c.data.length])).toEqual([
            [image.length - 1000, 700], [image.length - 300, 300],
        ])
        expect(single.map((c) => [c.offset, c.data.length])).toEqual([[40, 10]])
        for (const c of [...middle, ...end, ...single]) {
            expect(c.sequence).toBe(77)
            expect(c.data).toEqual(image.subarray(c.offset, c.offset + c.data.length))
        }
        expect(result).toMatchObject({ state: "refused", check: "test-done" })
        expect(result.served).toBe(5 * 700 + 1000 + 10)
    })
})
