/**
 * TLS MQTT on DeviceScript (hal/mqtt.ts; GP-TM-39, GP-TM-40, GP-TM-54). The socket is always
 * opened with proto "tls": the runtime checks the broker certificate against its built-in CA
 * bundle and the host name; there is no code path to a plaintext socket. Authentication is
 * a token (MQTT password), since the TLS client presents no certificate. Options the board
 * cannot honour are refused before connecting (mqtt-codec.ts checkConnectOptions).
 * The runtime has one socket at a time: a second session ends the first.
 */

import * as ds from "@devicescript/core"
import { connect, Socket } from "@devicescript/net"
import { TransportError } from "../errors"
import {
    MqttCapabilities,
    MqttConnectOptions,
    MqttMessage,
    MqttQos,
    MqttSession,
    MqttTransport,
} from "../mqtt"
import {
    checkConnectOptions,
    decodeConnack,
    decodePuback,
    decodePublish,
    decodeSuback,
    encodeConnect,
    encodeDisconnect,
    encodePingreq,
    encodePuback,
    encodePublishHeader,
    encodeSubscribe,
    MqttPacket,
    PACKET_CONNACK,
    PACKET_PINGRESP,
    PACKET_PUBACK,
    PACKET_PUBLISH,
    PACKET_SUBACK,
    PacketReader,
} from "./mqtt-codec"

/** Inbound messages kept until `receive`; newer ones are dropped when it is full. */
const INBOX_LIMIT = 32
/** Room for the topic and packet id around a payload of `maxPayload` bytes. */
const BODY_SLACK = 512

function nativeConcat(parts: Buffer[]): Buffer {
    return Buffer.concat(...parts)
}

class DeviceMqttSession implements MqttSession {
    private readonly socket: Socket
    private readonly options: MqttConnectOptions
    private readonly reader: PacketReader
    private readonly wakeup = ds.emitter<number>()
    private readonly inbox: MqttMessage[] = []
    private open = true
    private connackCode = -1
    private acked: number[] = []
    private subacks: number[][] = []
    private nextId = 1
    private pingTimer: any = undefined

    constructor(socket: Socket, options: MqttConnectOptions) {
        this.socket = socket
        this.options = options
        this.reader = new PacketReader(options.maxPayload + BODY_SLACK, nativeConcat)
    }

    /** Sends CONNECT and waits for CONNACK; TransportError "auth", "refused" or "timeout". */
    async handshake(): Promise<void> {
        const self = this
        setTimeout(async () => await self.pump(), 0)
        const o = this.options
        const token = o.auth === "token" ? Buffer.from(o.token) : null
        await this.send(encodeConnect(o.clientId, o.keepAliveSec, o.clientId, token))
        const deadline = ds.millis() + this.options.connectTimeoutMs
        while (this.connackCode < 0 && this.open && ds.millis() < deadline)
            await ds.wait(this.wakeup, deadline - ds.millis())
        const code = this.connackCode
        if (code !== 0) await this.close()
        if (code === 4 || code === 5) throw new TransportError("auth", "broker refused the token")
        if (code > 0) throw new TransportError("refused", "broker refused the connection")
        if (code < 0) throw new TransportError("timeout", "no CONNACK from the broker")
        if (this.options.keepAliveSec > 0) {
            this.pingTimer = setInterval(async () => {
                await self.sendQuietly(encodePingreq())
            }, this.options.keepAliveSec * 500)
        }
    }

    private async pump(): Promise<void> {
        while (this.open) {
            let chunk: Buffer = null
            try {
                chunk = await this.socket.recv()
            } catch (e) {
                chunk = null
            }
            if (chunk === null) break
            if (chunk === undefined) continue
            try {
                this.reader.push(chunk)
                for (let p = this.reader.next(); p !== null; p = this.reader.next())
                    await this.dispatch(p)
            } catch (e) {
                break
            }
        }
        await this.close()
    }

    private async dispatch(p: MqttPacket): Promise<void> {
        if (p.type === PACKET_PUBLISH) {
            if (p.body === null) return
            const msg = decodePublish(p.flags, p.body)
            if (msg.qos > 0) await this.sendQuietly(encodePuback(msg.packetId))
            if (msg.payload.length > this.options.maxPayload) return
            if (this.inbox.length < INBOX_LIMIT)
                this.inbox.push({ topic: msg.topic, payload: msg.payload })
        } else if (p.body === null) {
            throw new TransportError("size", "oversized control packet")
        } else if (p.type === PACKET_CONNACK) {
            this.connackCode = decodeConnack(p.body)
        } else if (p.type === PACKET_PUBACK) {
            this.acked.push(decodePuback(p.body))
        } else if (p.type === PACKET_SUBACK) {
            const s = decodeSuback(p.body)
            const entry = [s.packetId]
            for (let i = 0; i < s.codes.length; i++) entry.push(s.codes[i])
            this.subacks.push(entry)
        } else if (p.type !== PACKET_PINGRESP) {
            throw new TransportError("closed", "unexpected packet type")
        }
        this.wakeup.emit(p.type)
    }

    private async send(data: Buffer): Promise<void> {
        if (!this.open) throw new TransportError("closed", "session closed")
        try {
            await this.socket.send(data)
        } catch (e) {
            await this.close()
            throw new TransportError("closed", "connection lost")
        }
    }

    private async sendQuietly(data: Buffer): Promise<void> {
        try {
            await this.send(data)
        } catch (e) {
            // The pump notices the closed socket and ends the session.
        }
    }

    private packetId(): number {
        const id = this.nextId
        this.nextId = this.nextId >= 0xffff ? 1 : this.nextId + 1
        return id
    }

    /** Waits until `done()` holds, the session closes or the connect timeout passes. */
    private async waitFor(done: () => boolean): Promise<void> {
        const deadline = ds.millis() + this.options.connectTimeoutMs
        while (!done()) {
            if (!this.open) throw new TransportError("closed", "session closed")
            if (ds.millis() >= deadline) throw new TransportError("timeout", "no reply from broker")
            await ds.wait(this.wakeup, deadline - ds.millis())
        }
    }

    async publish(topic: string, payload: Buffer, qos: MqttQos): Promise<void> {
        const id = qos > 0 ? this.packetId() : 0
        await this.send(encodePublishHeader(topic, payload.length, qos, id))
        if (payload.length > 0) await this.send(payload)
        if (qos === 0) return
        const self = this
        await this.waitFor(() => self.acked.indexOf(id) >= 0)
        this.acked = this.acked.filter((x) => x !== id)
    }

    async subscribe(filter: string, qos: MqttQos): Promise<void> {
        const id = this.packetId()
        await this.send(encodeSubscribe(id, filter, qos))
        const self = this
        await this.waitFor(() => self.findSuback(id) !== null)
        const codes = this.findSuback(id)
        this.subacks = this.subacks.filter((entry) => entry[0] !== id)
        if (codes === null || codes[1] === 0x80)
            throw new TransportError("refused", "broker refused the subscription")
    }

    private findSuback(id: number): number[] | null {
        for (let i = 0; i < this.subacks.length; i++)
            if (this.subacks[i][0] === id) return this.subacks[i]
        return null
    }

    async receive(): Promise<MqttMessage | null> {
        while (this.inbox.length === 0 && this.open) await ds.wait(this.wakeup)
        if (this.inbox.length === 0) return null
        return this.inbox.shift()
    }

    isOpen(): boolean {
        return this.open
    }

    async close(): Promise<void> {
        if (!this.open) return
        if (this.pingTimer !== undefined) clearInterval(this.pingTimer)
        this.pingTimer = undefined
        try {
            await this.socket.send(encodeDisconnect())
        } catch (e) {
            // Already gone.
        }
        this.open = false
        await this.socket.close()
        this.wakeup.emit(0)
    }
}

export class DeviceMqttTransport implements MqttTransport {
    capabilities(): MqttCapabilities {
        return { clientCertificate: false, caPinning: false, tls13: false }
    }

    async connect(options: MqttConnectOptions): Promise<MqttSession> {
        checkConnectOptions(this.capabilities(), options)
        let socket: Socket = null
        try {
            socket = await connect({
                host: options.host,
                port: options.port,
                proto: "tls",
                timeout: options.connectTimeoutMs,
            })
        } catch (e) {
            const text = (e as Error).message + ""
            if (text.indexOf("Timeout") >= 0)
                throw new TransportError("timeout", "TLS connect timed out")
            throw new TransportError("tls", "TLS connection failed")
        }
        const session = new DeviceMqttSession(socket, options)
        await session.handshake()
        return session
    }
}
