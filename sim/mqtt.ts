/**
 * The sim board's MQTT transport (hal/mqtt.ts): MQTT 3.1.1 (mqtt-packet) over node:tls only,
 * TLS 1.2 or newer with ECDHE and AEAD suites, the broker pinned to the fleet CA and checked
 * against the configured server name, the client authenticated by its device certificate
 * (GP-TM-34, GP-TM-39, GP-TM-40). Inbound packets are bounded before they are buffered (GP-TM-54).
 */

import { isIP } from "node:net"
import * as tls from "node:tls"
import * as mqtt from "mqtt-packet"
import { Crypto } from "../hal/crypto"
import { TransportError } from "../hal/errors"
import { Flash } from "../hal/flash"
import {
    MqttCapabilities,
    MqttConnectOptions,
    MqttMessage,
    MqttQos,
    MqttSession,
    MqttTransport,
} from "../hal/mqtt"
import { SE_SLOT_IDENTITY, SecureElement } from "../hal/secure-element"
import { PARTITION_IDENTITY, readIdentity } from "../src/identity"

export const TLS_MIN_VERSION = "TLSv1.2"
/**
 * TLS 1.3 suites first (all AEAD), then TLS 1.2 ECDHE suites with AEAD ciphers only: no
 * static RSA or DH key exchange, no CBC, no SHA-1 MACs.
 */
export const TLS_CIPHERS = [
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
].join(":")

/** Bytes of MQTT framing (fixed header, topic, packet id) allowed on top of maxPayload. */
const PACKET_OVERHEAD = 1024

/** How the sim's TLS engine reaches the device identity (DESIGN.md section 5). */
export interface SimTlsIdentity {
    /** The device certificate, as stored on the device. */
    certificatePem(): Promise<string>
    /**
     * Models the hardware path between the TLS engine and the secure element: the key is
     * used for the handshake and reachable from no HAL call.
     */
    privateKeyPem(): string
}

type Packet = mqtt.Packet

interface Pending {
    resolve(packet: Packet): void
    reject(err: TransportError): void
}

/** Maps a socket or TLS error to the contract's codes; the message names no secret. */
export function transportErrorOf(err: NodeJS.ErrnoException): TransportError {
    const code = err.code ?? ""
    if (/ALERT|CERTIFICATE_REQUIRED/.test(code))
        return new TransportError("auth", "peer refused the TLS handshake: " + code)
    if (/^ERR_SSL|^ERR_TLS|CERT|SIGNATURE|ISSUER/.test(code))
        return new TransportError("tls", "TLS: " + code)
    return new TransportError("closed", "connection failed: " + (code || err.message))
}

class SimMqttSession implements MqttSession {
    private readonly parser = mqtt.parser({ protocolVersion: 4 })
    private readonly pending = new Map<number, Pending>()
    private readonly inbox: MqttMessage[] = []
    private readonly readers: ((m: MqttMessage | null) => void)[] = []
    private open = true
    private nextId = 1
    private lastSent = Date.now()
    private awaitingPong = false
    private timer: NodeJS.Timeout | undefined
    /** Inbound messages dropped for size; a test reads it. */
    droppedOversize = 0

    constructor(
        private readonly socket: tls.TLSSocket,
        private readonly options: MqttConnectOptions
    ) {
        socket.on("close", () => this.shutdown(new TransportError("closed", "connection closed")))
        socket.on("error", () => undefined)
        this.parser.on("error", () => this.fail(new TransportError("closed", "malformed packet")))
        this.parser.on("packet", (p: Packet) => this.onPacket(p))
        socket.on("data", (chunk: Buffer) => this.onData(chunk))
        const periodMs = options.keepAliveSec * 1000
        this.timer = setInterval(() => this.keepAlive(periodMs), Math.max(250, periodMs / 2))
        this.timer.unref()
    }

    private onData(chunk: Buffer): void {
        this.parser.parse(chunk)
        const declared = (this.parser as unknown as { packet: { length: number } }).packet.length
        if (declared > this.options.maxPayload + PACKET_OVERHEAD)
            this.fail(new TransportError("size", "inbound packet too large"))
    }

    /** Sends PINGREQ when idle; a ping left unanswered for a whole period ends the session. */
    private keepAlive(periodMs: number): void {
        if (!this.open) return
        if (this.awaitingPong) return this.fail(new TransportError("timeout", "keep-alive"))
        if (Date.now() - this.lastSent >= periodMs / 2) {
            this.awaitingPong = true
            this.write({ cmd: "pingreq" })
        }
    }

    private write(packet: Packet): void {
        this.lastSent = Date.now()
        this.socket.write(mqtt.generate(packet))
    }

    private onPacket(p: Packet): void {
        if (p.cmd === "pingresp") {
            this.awaitingPong = false
            return
        }
        if (p.cmd === "publish") return this.onPublish(p)
        if (p.cmd === "puback" || p.cmd === "suback") {
            const waiter = p.messageId === undefined ? undefined : this.pending.get(p.messageId)
            if (!waiter) return this.fail(new TransportError("closed", "unexpected ack"))
            this.pending.delete(p.messageId!)
            waiter.resolve(p)
            return
        }
        this.fail(new TransportError("closed", "unexpected packet " + p.cmd))
    }

    private onPublish(p: mqtt.IPublishPacket): void {
        if (p.qos === 2) return this.fail(new TransportError("closed", "QoS 2 not subscribed"))
        if (p.qos === 1) this.write({ cmd: "puback", messageId: p.messageId })
        const payload = Buffer.from(p.payload as Buffer)
        if (payload.length > this.options.maxPayload) {
            this.droppedOversize++
            return
        }
        const message = { topic: p.topic, payload }
        const reader = this.readers.shift()
        if (reader) reader(message)
        else this.inbox.push(message)
    }

    private fail(err: TransportError): void {
        this.shutdown(err)
        this.socket.destroy()
    }

    private shutdown(err: TransportError): void {
        if (!this.open) return
        this.open = false
        clearInterval(this.timer)
        for (const waiter of this.pending.values()) waiter.reject(err)
        this.pending.clear()
        for (const reader of this.readers.splice(0)) reader(null)
    }

    private request(packet: Packet & { messageId?: number }): Promise<Packet> {
        if (!this.open) return Promise.reject(new TransportError("closed", "session closed"))
        const id = this.nextId
        this.nextId = id === 0xffff ? 1 : id + 1
        packet.messageId = id
        return new Promise<Packet>((resolve, reject) => {
            this.pending.set(id, { resolve, reject })
            this.write(packet)
        })
    }

    async publish(topic: string, payload: Buffer, qos: MqttQos): Promise<void> {
        if (!this.open) throw new TransportError("closed", "session closed")
        if (qos === 0) {
            this.write({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false })
            return
        }
        await this.request({ cmd: "publish", topic, payload, qos: 1, retain: false, dup: false })
    }

    async subscribe(filter: string, qos: MqttQos): Promise<void> {
        const ack = (await this.request({
            cmd: "subscribe",
            subscriptions: [{ topic: filter, qos }],
        })) as mqtt.ISubackPacket
        if (ack.granted.length !== 1 || ack.granted[0] === 128)
            throw new TransportError("refused", "subscription refused")
    }

    receive(): Promise<MqttMessage | null> {
        const next = this.inbox.shift()
        if (next) return Promise.resolve(next)
        if (!this.open) return Promise.resolve(null)
        return new Promise((resolve) => this.readers.push(resolve))
    }

    isOpen(): boolean {
        return this.open
    }

    async close(): Promise<void> {
        if (!this.open) return
        this.write({ cmd: "disconnect" })
        this.shutdown(new TransportError("closed", "session closed"))
        this.socket.end()
    }
}

function tlsConnect(
    options: MqttConnectOptions,
    identity: SimTlsIdentity | undefined,
    certPem: string | undefined
): Promise<tls.TLSSocket> {
    const connectOptions: tls.ConnectionOptions = {
        host: options.host,
        port: options.port,
        ca: [options.caPem],
        minVersion: TLS_MIN_VERSION,
        ciphers: TLS_CIPHERS,
        rejectUnauthorized: true,
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity(options.serverName, cert),
    }
    if (!isIP(options.serverName)) connectOptions.servername = options.serverName
    if (options.auth === "certificate") {
        connectOptions.cert = certPem
        connectOptions.key = identity!.privateKeyPem()
    }
    return new Promise((resolve, reject) => {
        const socket = tls.connect(connectOptions)
        // MQTT messages are small and answered one by one (update chunks are asked for in
        // turn): Nagle's algorithm with the peer's delayed ACK would add ~40 ms to each.
        socket.setNoDelay(true)
        const timer = setTimeout(() => {
            socket.destroy()
            reject(new TransportError("timeout", "TLS handshake timed out"))
        }, options.connectTimeoutMs)
        socket.once("secureConnect", () => {
            clearTimeout(timer)
            socket.off("error", onError)
            resolve(socket)
        })
        const onError = (err: Error) => {
            clearTimeout(timer)
            socket.destroy()
            reject(transportErrorOf(err))
        }
        socket.once("error", onError)
    })
}

/** Sends CONNECT and waits for CONNACK; TransportError "auth" when the broker refuses us. */
function mqttConnect(socket: tls.TLSSocket, options: MqttConnectOptions): Promise<void> {
    const parser = mqtt.parser({ protocolVersion: 4 })
    return new Promise((resolve, reject) => {
        let settled = false
        const finish = (err?: TransportError) => {
            if (settled) return
            settled = true
            clearTimeout(timer)
            socket.off("data", onData)
            socket.off("error", onError)
            socket.off("close", onClose)
            if (err) {
                socket.destroy()
                reject(err)
            } else resolve()
        }
        const timer = setTimeout(
            () => finish(new TransportError("timeout", "no CONNACK")),
            options.connectTimeoutMs
        )
        const onData = (chunk: Buffer) => {
            if (chunk.length > 64) return finish(new TransportError("closed", "unexpected data"))
            parser.parse(chunk)
        }
        const onError = (err: Error) => finish(transportErrorOf(err))
        const onClose = () => finish(new TransportError("closed", "closed before CONNACK"))
        parser.on("error", () => finish(new TransportError("closed", "malformed CONNACK")))
        parser.on("packet", (p: Packet) => {
            if (p.cmd !== "connack") return finish(new TransportError("closed", "expected CONNACK"))
            const code = p.returnCode ?? 0
            if (code === 0) return finish()
            if (code === 4 || code === 5)
                return finish(new TransportError("auth", "broker refused the client"))
            finish(new TransportError("refused", "CONNACK return code " + code))
        })
        socket.on("data", onData)
        socket.once("error", onError)
        socket.once("close", onClose)
        const connect: mqtt.IConnectPacket = {
            cmd: "connect",
            protocolId: "MQTT",
            protocolVersion: 4,
            clean: true,
            clientId: options.clientId,
            keepalive: options.keepAliveSec,
        }
        if (options.auth === "token") {
            connect.username = options.clientId
            connect.password = Buffer.from(options.token ?? "")
        }
        socket.write(mqtt.generate(connect))
    })
}

/**
 * The sim board's transport. With an identity it authenticates by certificate; without one
 * it offers token authentication only (as the ESP32 runtime does), still over TLS.
 */
export class SimMqttTransport implements MqttTransport {
    constructor(private readonly identity?: SimTlsIdentity) {}

    capabilities(): MqttCapabilities {
        return { clientCertificate: this.identity !== undefined, caPinning: true, tls13: true }
    }

    async connect(options: MqttConnectOptions): Promise<MqttSession> {
        if (options.auth === "certificate" && !this.identity)
            throw new TransportError("auth", "no client certificate on this board")
        if (options.auth === "token" && !options.token)
            throw new TransportError("auth", "token authentication needs a token")
        // This board pins: an empty CA would mean trusting whatever the host trusts.
        if (options.caPem.indexOf("-----BEGIN CERTIFICATE-----") < 0)
            throw new TransportError("tls", "no fleet CA to pin")
        const certPem =
            options.auth === "certificate" ? await this.identity!.certificatePem() : undefined
        const socket = await tlsConnect(options, this.identity, certPem)
        await mqttConnect(socket, options)
        return new SimMqttSession(socket, options)
    }
}

/** What the sim transport needs of a board: its SE (with the TLS-engine path) and flash. */
export interface SimIdentityBoard {
    crypto: Crypto
    secureElement: SecureElement & { tlsPrivateKeyPem(slot: number): string }
    flash: Flash
}

/**
 * The transport of a provisioned sim board: the certificate from its identity partition,
 * the key from SE slot 0. Pass as SimBoard's `mqtt` option: `{ mqtt: simMqttTransport }`.
 */
export function simMqttTransport(board: SimIdentityBoard): SimMqttTransport {
    return new SimMqttTransport({
        async certificatePem() {
            const partition = board.flash.partition(PARTITION_IDENTITY)
            const identity = await readIdentity(board.crypto, board.secureElement, partition)
            if (identity === null) throw new TransportError("auth", "device is not provisioned")
            return identity.certificatePem
        },
        privateKeyPem() {
            return board.secureElement.tlsPrivateKeyPem(SE_SLOT_IDENTITY)
        },
    })
}
