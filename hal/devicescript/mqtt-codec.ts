/**
 * MQTT 3.1.1 packet codec for the DeviceScript transport (OASIS MQTT 3.1.1 sections 2-3;
 * GP-TM-39, GP-TM-54). Pure: no sockets, no `@devicescript/*`, so Node checks it against
 * mqtt-packet and the VM runs the same vectors. Every length read from the broker is checked
 * before use; an oversized packet is skipped without being buffered; a malformed one ends the
 * session (TransportError "closed"). Also the pre-connect checks that refuse, never weaken.
 */

import { TransportError, UnsupportedError } from "../errors"
import { MqttCapabilities, MqttConnectOptions } from "../mqtt"

export const PACKET_CONNECT = 1
export const PACKET_CONNACK = 2
export const PACKET_PUBLISH = 3
export const PACKET_PUBACK = 4
export const PACKET_SUBSCRIBE = 8
export const PACKET_SUBACK = 9
export const PACKET_PINGREQ = 12
export const PACKET_PINGRESP = 13
export const PACKET_DISCONNECT = 14

/** Largest remaining length MQTT can encode (four length bytes). */
export const REMAINING_LENGTH_MAX = 268435455

function malformed(what: string): TransportError {
    return new TransportError("closed", "malformed packet from broker: " + what)
}

function bytesOf(values: number[]): Buffer {
    const out = Buffer.alloc(values.length)
    for (let i = 0; i < values.length; i++) out[i] = values[i]
    return out
}

/** Portable concatenation; a byte loop, so the device transport injects the native one. */
export function join(parts: Buffer[]): Buffer {
    let total = 0
    for (let i = 0; i < parts.length; i++) total += parts[i].length
    const out = Buffer.alloc(total)
    let at = 0
    for (let i = 0; i < parts.length; i++) {
        for (let j = 0; j < parts[i].length; j++) out[at + j] = parts[i][j]
        at += parts[i].length
    }
    return out
}

function u16(value: number): Buffer {
    return bytesOf([Math.floor(value / 256) & 0xff, value & 0xff])
}

/** A length-prefixed field (MQTT 1.5.3 strings and binary data). */
function field(data: Buffer): Buffer {
    if (data.length > 0xffff) throw new TransportError("size", "field longer than 65535 bytes")
    return join([u16(data.length), data])
}

export function encodeRemainingLength(length: number): Buffer {
    if (!(length >= 0 && length <= REMAINING_LENGTH_MAX) || Math.floor(length) !== length)
        throw new TransportError("size", "packet too large for MQTT")
    const out: number[] = []
    let rest = length
    for (;;) {
        let digit = rest & 0x7f
        rest = Math.floor(rest / 128)
        if (rest > 0) digit = digit | 0x80
        out.push(digit)
        if (rest === 0) break
    }
    return bytesOf(out)
}

function packet(firstByte: number, body: Buffer): Buffer {
    return join([bytesOf([firstByte]), encodeRemainingLength(body.length), body])
}

/** CONNECT with a clean session; `password` only with a `username` (3.1.2.9). */
export function encodeConnect(
    clientId: string,
    keepAliveSec: number,
    username: string | null,
    password: Buffer | null
): Buffer {
    let flags = 0x02
    const payload: Buffer[] = [field(Buffer.from(clientId))]
    if (username !== null) {
        flags = flags | 0x80
        payload.push(field(Buffer.from(username)))
        if (password !== null) {
            flags = flags | 0x40
            payload.push(field(password))
        }
    }
    const parts = [field(Buffer.from("MQTT")), bytesOf([4, flags]), u16(keepAliveSec)]
    for (let i = 0; i < payload.length; i++) parts.push(payload[i])
    return packet(0x10, join(parts))
}

/**
 * The PUBLISH bytes before the payload, so a large payload is sent as it is instead of
 * being copied (byte copies are slow in bytecode).
 */
export function encodePublishHeader(
    topic: string,
    payloadLength: number,
    qos: number,
    packetId: number
): Buffer {
    const variable: Buffer[] = [field(Buffer.from(topic))]
    if (qos > 0) variable.push(u16(packetId))
    const head = join(variable)
    const first = bytesOf([0x30 | (qos << 1)])
    return join([first, encodeRemainingLength(head.length + payloadLength), head])
}

export function encodePublish(
    topic: string,
    payload: Buffer,
    qos: number,
    packetId: number
): Buffer {
    return join([encodePublishHeader(topic, payload.length, qos, packetId), payload])
}

export function encodeSubscribe(packetId: number, filter: string, qos: number): Buffer {
    return packet(0x82, join([u16(packetId), field(Buffer.from(filter)), bytesOf([qos])]))
}

export function encodePuback(packetId: number): Buffer {
    return packet(0x40, u16(packetId))
}

export function encodePingreq(): Buffer {
    return bytesOf([0xc0, 0])
}

export function encodeDisconnect(): Buffer {
    return bytesOf([0xe0, 0])
}

/** One packet from the broker; `body` is null when it was dropped for its size. */
export interface MqttPacket {
    type: number
    flags: number
    body: Buffer | null
}

/**
 * Splits the broker's byte stream into packets. A packet whose remaining length exceeds
 * `maxBody` is reported with a null body and its bytes are skipped as they arrive.
 */
export class PacketReader {
    private readonly maxBody: number
    private readonly concat: (parts: Buffer[]) => Buffer
    private pending: Buffer = Buffer.alloc(0)
    private skipping = 0

    /** `concat` joins buffers; the device passes its native Buffer.concat. */
    constructor(maxBody: number, concat?: (parts: Buffer[]) => Buffer) {
        this.maxBody = maxBody
        this.concat = concat ? concat : join
    }

    push(chunk: Buffer): void {
        if (this.skipping > 0) {
            const n = chunk.length < this.skipping ? chunk.length : this.skipping
            this.skipping -= n
            chunk = chunk.slice(n, chunk.length)
        }
        if (chunk.length > 0) this.pending = this.concat([this.pending, chunk])
    }

    /** The next whole packet, or null until more bytes arrive. */
    next(): MqttPacket | null {
        if (this.skipping > 0 || this.pending.length < 2) return null
        let length = 0
        let scale = 1
        let at = 1
        for (;;) {
            if (at >= this.pending.length) return null
            if (at > 4) throw malformed("remaining length over four bytes")
            const digit = this.pending[at]
            length += (digit & 0x7f) * scale
            scale *= 128
            at++
            if ((digit & 0x80) === 0) break
        }
        const first = this.pending[0]
        const type = first >> 4
        const flags = first & 0x0f
        if (length > this.maxBody) {
            const available = this.pending.length - at
            const dropped = available < length ? available : length
            this.skipping = length - dropped
            this.pending = this.pending.slice(at + dropped, this.pending.length)
            return { type: type, flags: flags, body: null }
        }
        if (this.pending.length < at + length) return null
        const body = this.pending.slice(at, at + length)
        this.pending = this.pending.slice(at + length, this.pending.length)
        return { type: type, flags: flags, body: body }
    }
}

/** Every packet in `chunks` fed in order (tests and vectors). */
export function splitPackets(chunks: Buffer[], maxBody: number): MqttPacket[] {
    const reader = new PacketReader(maxBody)
    const out: MqttPacket[] = []
    for (let i = 0; i < chunks.length; i++) {
        reader.push(chunks[i])
        for (let p = reader.next(); p !== null; p = reader.next()) out.push(p)
    }
    return out
}

function readU16(body: Buffer, at: number): number {
    if (at + 2 > body.length) throw malformed("truncated")
    return body[at] * 256 + body[at + 1]
}

/** The CONNACK return code (0 accepted; 4 bad credentials; 5 not authorised). */
export function decodeConnack(body: Buffer): number {
    if (body.length !== 2) throw malformed("CONNACK length")
    return body[1]
}

export function decodePuback(body: Buffer): number {
    if (body.length !== 2) throw malformed("PUBACK length")
    return readU16(body, 0)
}

export interface Suback {
    packetId: number
    /** Granted QoS per filter, or 0x80 for a refused filter. */
    codes: number[]
}

export function decodeSuback(body: Buffer): Suback {
    if (body.length < 3) throw malformed("SUBACK length")
    const codes: number[] = []
    for (let i = 2; i < body.length; i++) codes.push(body[i])
    return { packetId: readU16(body, 0), codes: codes }
}

export interface InboundPublish {
    topic: string
    payload: Buffer
    qos: number
    /** 0 for QoS 0. */
    packetId: number
}

export function decodePublish(flags: number, body: Buffer): InboundPublish {
    const qos = (flags >> 1) & 3
    if (qos === 3) throw malformed("PUBLISH QoS 3")
    const topicLength = readU16(body, 0)
    if (topicLength < 1 || 2 + topicLength > body.length) throw malformed("PUBLISH topic")
    const topic = body.slice(2, 2 + topicLength).toString()
    let at = 2 + topicLength
    let packetId = 0
    if (qos > 0) {
        packetId = readU16(body, at)
        at += 2
    }
    return { topic: topic, payload: body.slice(at, body.length), qos: qos, packetId: packetId }
}

/**
 * Refuses options this board cannot honour before any socket opens: a client certificate
 * or a pinned CA it cannot enforce (UnsupportedError), a token session without a token, or
 * a server name the TLS stack would not check (it verifies the certificate against `host`).
 */
export function checkConnectOptions(caps: MqttCapabilities, options: MqttConnectOptions): void {
    if (options.auth === "certificate" && !caps.clientCertificate)
        throw new UnsupportedError("mqtt-client-certificate")
    if (options.auth !== "certificate" && options.auth !== "token")
        throw new TransportError("auth", "unknown authentication")
    if (options.auth === "token" && (typeof options.token !== "string" || options.token === ""))
        throw new TransportError("auth", "token authentication needs a token")
    if (options.caPem !== "" && !caps.caPinning) throw new UnsupportedError("mqtt-ca-pinning")
    if (typeof options.host !== "string" || options.host === "")
        throw new TransportError("tls", "no broker host")
    if (options.serverName !== options.host)
        throw new TransportError("tls", "server name must be the host the certificate matches")
    if (!(options.port >= 1 && options.port <= 65535))
        throw new TransportError("refused", "broker port out of range")
    if (typeof options.clientId !== "string" || options.clientId.length < 1)
        throw new TransportError("refused", "client id is empty")
    if (!(options.keepAliveSec >= 0 && options.keepAliveSec <= 65535))
        throw new TransportError("refused", "keep-alive out of range")
}
