/**
 * The DeviceScript transport's MQTT codec (hal/devicescript/mqtt-codec.ts) against
 * mqtt-packet, property-based: what it encodes mqtt-packet decodes to the same packet, and
 * whatever bytes a broker sends, the reader either splits them as mqtt-packet does or ends
 * the session with a TransportError (GP-TM-54). The shared vectors run the same code in the VM.
 */

import fc from "fast-check"
import mqtt from "mqtt-packet"
import { describe, expect, it } from "vitest"
import { TransportError } from "../../hal/errors"
import {
    decodePublish,
    encodeConnect,
    encodePublish,
    encodeSubscribe,
    PacketReader,
    splitPackets,
} from "../../hal/devicescript/mqtt-codec"

function parseAll(bytes: Buffer): mqtt.Packet[] {
    const parser = mqtt.parser({ protocolVersion: 4 })
    const out: mqtt.Packet[] = []
    parser.on("packet", (p) => out.push(p))
    parser.on("error", (e) => {
        throw e
    })
    parser.parse(bytes)
    return out
}

const topic = fc.stringMatching(/^[a-z0-9/_-]{1,40}$/)
const payload = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a))
const qos = fc.constantFrom(0, 1)
const packetId = fc.integer({ min: 1, max: 65535 })
const clientId = fc.stringMatching(/^[a-z0-9-]{1,23}$/)
const token = fc.string({ minLength: 1, maxLength: 64 })
const cuts = fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 })

describe("MQTT codec", () => {
    it("encodes PUBLISH packets that mqtt-packet parses back", () => {
        fc.assert(
            fc.property(topic, payload, qos, packetId, (t, p, q, id) => {
                const [packet] = parseAll(encodePublish(t, p, q, id)) as mqtt.IPublishPacket[]

                expect(packet.cmd).toBe("publish")
                expect(packet.topic).toBe(t)
                expect(Buffer.from(packet.payload as Buffer)).toEqual(p)
                expect(packet.qos).toBe(q)
                if (q > 0) expect(packet.messageId).toBe(id)
            })
        )
    })

    it("GP-TM-40: encodes CONNECT with the token only as the password field", () => {
        fc.assert(
            fc.property(clientId, token, (id, secret) => {
                const bytes = encodeConnect(id, 30, id, Buffer.from(secret))

                const [packet] = parseAll(bytes) as mqtt.IConnectPacket[]

                expect(packet.clientId).toBe(id)
                expect(packet.username).toBe(id)
                expect(Buffer.from(packet.password as Buffer).toString()).toBe(secret)
                expect(packet.clean).toBe(true)
                expect(packet.keepalive).toBe(30)
            })
        )
    })

    it("encodes SUBSCRIBE as mqtt-packet does", () => {
        fc.assert(
            fc.property(packetId, topic, qos, (id, t, q) => {
                const mine = encodeSubscribe(id, t, q)

                const subscriptions = [{ topic: t, qos: q as 0 | 1 }]
                const theirs = mqtt.generate({ cmd: "subscribe", messageId: id, subscriptions })

                expect(mine).toEqual(theirs)
            })
        )
    })

    it("splits a broker stream cut anywhere into the packets mqtt-packet sees", () => {
        const publish = fc.tuple(topic, payload, qos, packetId)
        const packets = fc.array(publish, { minLength: 1, maxLength: 6 })
        fc.assert(
            fc.property(packets, cuts, (list, sizes) => {
                const encoded = list.map(([t, p, q, id]) => encodePublish(t, p, q, id))
                const stream = Buffer.concat(encoded)
                const chunks: Buffer[] = []
                let at = 0
                for (let i = 0; at < stream.length; i++) {
                    const n = sizes[i % sizes.length]
                    chunks.push(stream.subarray(at, at + n))
                    at += n
                }

                const split = splitPackets(chunks, 4096)

                expect(split.length).toBe(list.length)
                split.forEach((p, i) => {
                    const msg = decodePublish(p.flags, p.body as Buffer)
                    expect(msg.topic).toBe(list[i][0])
                    expect(msg.payload).toEqual(list[i][1])
                })
            })
        )
    })

    it("GP-TM-54: random broker bytes never crash the reader, only end the session", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
                const reader = new PacketReader(128)
                try {
                    reader.push(Buffer.from(bytes))
                    for (let p = reader.next(); p !== null; p = reader.next()) {
                        if (p.type === 3 && p.body !== null) decodePublish(p.flags, p.body)
                    }
                } catch (e) {
                    expect(e).toBeInstanceOf(TransportError)
                }
            })
        )
    })

    it("GP-TM-54: an oversized packet is skipped across chunks without being buffered", () => {
        const big = encodePublish("a", Buffer.alloc(5000, 1), 0, 0)
        const small = encodePublish("b", Buffer.from("ok"), 0, 0)
        const reader = new PacketReader(1024)

        reader.push(big.subarray(0, 10))
        const first = reader.next()
        for (let at = 10; at < big.length; at += 700) reader.push(big.subarray(at, at + 700))
        reader.push(small)
        const second = reader.next()

        expect(first).toEqual({ type: 3, flags: 0, body: null })
        expect(decodePublish(second!.flags, second!.body!).topic).toBe("b")
    })
})
