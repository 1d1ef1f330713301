/**
 * The device's MQTT session (GP-TM-17, GP-TM-39, GP-TM-43, GP-TM-54): topics scoped to
 * bulwark/<deviceId>/, mutual-TLS (or, where the board cannot, token) authentication only,
 * reconnect with jittered exponential backoff, a bounded offline queue for telemetry, outage
 * events for the audit log, and every inbound payload size-checked and decoded before use.
 * Portable: DeviceScript subset (DESIGN.md section 4); all I/O goes through the Board.
 */

import { readU32 } from "../boot/bytes"
import { isSafeName, Profile } from "../boot/profile"
import { Board, requireCapability } from "../hal/board"
import { TransportError, UnsupportedError } from "../hal/errors"
import { MqttConnectOptions, MqttMessage, MqttQos, MqttSession, MqttTransport } from "../hal/mqtt"
import { MessageError, parseInboundTopic, TOPIC_ROOT } from "./messages"

export type TransportPolicy = Profile["transport"]

export interface SessionConfig {
    deviceId: string
    /** PEM of the fleet CA (the device's identity record holds it). */
    caPem: string
    transport: TransportPolicy
    /** Address to dial when it differs from the name the broker certificate carries. */
    connectHost?: string
    /** Per-device token, for boards that cannot present a client certificate. */
    token?: string
    connectTimeoutMs?: number
}

/** Events for the audit log and diagnostics; none carries a credential. */
export interface SessionEvent {
    event:
        | "connected"
        | "connect-failed"
        | "outage-start"
        | "outage-end"
        | "queue-overflow"
        | "inbound-rejected"
        | "inbound-failed"
    /** Monotonic ms of the board clock. */
    atMs: number
    /** TransportError code, or MessageError check. */
    code?: string
    channel?: string
    /** Backoff before the next attempt. */
    retryInMs?: number
    /** Outage length (outage-end). */
    durationMs?: number
    /** Telemetry dropped from the queue during the outage (outage-end, queue-overflow). */
    dropped?: number
}

export interface SessionStats {
    connected: boolean
    queued: number
    /** Telemetry messages dropped because the queue was full, since start. */
    dropped: number
    connects: number
    failedAttempts: number
    rejectedInbound: number
    outages: number
}

interface Outgoing {
    topic: string
    payload: Buffer
    qos: MqttQos
}

interface Route {
    channel: string
    handle: (payload: Buffer, path: string[]) => Promise<void>
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10000
/** Backoff sleeps are taken in slices so `stop` is honoured within this many ms. */
const SLEEP_SLICE_MS = 1000

function codeOf(err: any): string {
    if (err instanceof TransportError) return err.code
    if (err instanceof UnsupportedError) return "unsupported"
    return "error"
}

/**
 * One device's connection to its broker. `run` keeps it connected until `stop`; `publish`
 * never blocks the caller's local work while the broker is away: telemetry waits in the
 * queue (oldest dropped and counted past `queueLimit`) and goes out in order once back.
 */
export class DeviceSession {
    private readonly board: Board
    private readonly config: SessionConfig
    private readonly mqtt: MqttTransport
    private readonly auth: "certificate" | "token"
    /** The fleet CA to pin, or "" for the board's own trust store (token boards only). */
    private readonly caPem: string
    private readonly onEvent: (e: SessionEvent) => void
    private readonly routes: Route[] = []
    private readonly queue: Outgoing[] = []
    private session: MqttSession | null = null
    private flushing = false
    private stopped = false
    /** Set by `reconnect`: a pending backoff ends and the next attempt starts at once. */
    private wake = false
    private attempt = 0
    /** The delay announced in the last connect-failed event, used by the next backoff. */
    private pendingDelay = -1
    private outageStart = -1
    private outageDropped = 0
    private statsDropped = 0
    private statsConnects = 0
    private statsFailed = 0
    private statsRejected = 0
    private statsOutages = 0

    /**
     * Refuses (UnsupportedError) a board without a TLS MQTT transport, one that can neither
     * present a client certificate nor has a per-device token configured, and a certificate
     * board that cannot pin the fleet CA: never plaintext, never a silent downgrade. A token
     * board (ESP32) checks the broker against its own trust store and the broker host name.
     */
    constructor(board: Board, config: SessionConfig, onEvent?: (e: SessionEvent) => void) {
        if (!isSafeName(config.deviceId)) throw new MessageError("topic", "device id")
        this.board = board
        this.config = config
        this.mqtt = requireCapability(board.mqtt, "mqtt")
        const caps = this.mqtt.capabilities()
        if (caps.clientCertificate) this.auth = "certificate"
        else if (config.token !== undefined && config.token.length >= 16) this.auth = "token"
        else throw new UnsupportedError("mqtt client certificate (and no device token)")
        if (this.auth === "certificate" && !caps.caPinning)
            throw new UnsupportedError("mqtt fleet CA pinning")
        this.caPem = caps.caPinning ? config.caPem : ""
        this.onEvent = onEvent === undefined ? noEvent : onEvent
    }

    /** bulwark/<deviceId>/<suffix> */
    topic(suffix: string): string {
        return TOPIC_ROOT + "/" + this.config.deviceId + "/" + suffix
    }

    /**
     * Routes inbound messages on bulwark/<deviceId>/<channel>/... to `handle`, which gets
     * the payload after the size check; `decode` turns it into a value or throws (a
     * MessageError names the check), and `handle` sees only decoded values.
     */
    route<T>(
        channel: string,
        decode: (payload: Buffer, path: string[]) => T,
        handle: (value: T, path: string[]) => Promise<void>
    ): void {
        for (let i = 0; i < this.routes.length; i++)
            if (this.routes[i].channel === channel) throw new MessageError("topic", "channel taken")
        const entry: Route = { channel: channel, handle: makeHandler(decode, handle) }
        this.routes.push(entry)
    }

    isConnected(): boolean {
        return this.session !== null && this.session.isOpen()
    }

    stats(): SessionStats {
        return {
            connected: this.isConnected(),
            queued: this.queue.length,
            dropped: this.statsDropped,
            connects: this.statsConnects,
            failedAttempts: this.statsFailed,
            rejectedInbound: this.statsRejected,
            outages: this.statsOutages,
        }
    }

    /**
     * Sends `payload` on bulwark/<deviceId>/<suffix>. With `queue` (telemetry), it is kept
     * while offline and sent in order later; without, it is sent now (QoS 0) or dropped.
     */
    async publish(suffix: string, payload: Buffer, queue: boolean): Promise<void> {
        const item: Outgoing = { topic: this.topic(suffix), payload: payload, qos: queue ? 1 : 0 }
        if (!queue) {
            const s = this.session
            if (s !== null && s.isOpen()) {
                try {
                    await s.publish(item.topic, item.payload, 0)
                } catch (e) {
                    return
                }
            }
            return
        }
        if (this.queue.length >= this.config.transport.queueLimit) {
            this.queue.shift()
            this.statsDropped++
            this.outageDropped++
            if (this.outageDropped === 1)
                this.emit({ event: "queue-overflow", atMs: this.now(), dropped: 1 })
        }
        this.queue.push(item)
        await this.flush()
    }

    /** Sends queued telemetry in order while connected; a failed send stays at the head. */
    private async flush(): Promise<void> {
        if (this.flushing) return
        this.flushing = true
        try {
            while (this.queue.length > 0) {
                const s = this.session
                if (s === null || !s.isOpen()) break
                const head = this.queue[0]
                try {
                    await s.publish(head.topic, head.payload, head.qos)
                } catch (e) {
                    break
                }
                if (this.queue.length > 0 && this.queue[0] === head) this.queue.shift()
            }
        } finally {
            this.flushing = false
        }
    }

    /** Keeps the session up until `stop`. Resolves when stopped. */
    async run(): Promise<void> {
        while (!this.stopped) {
            const s = await this.connectOnce()
            if (s === null) {
                await this.backoff()
                continue
            }
            await this.flush()
            await this.receiveLoop(s)
            this.session = null
            if (!this.stopped) this.beginOutage()
        }
    }

    /** Ends `run`: closes the session; a pending backoff ends within a second. */
    async stop(): Promise<void> {
        this.stopped = true
        const s = this.session
        if (s !== null) await s.close()
    }

    /**
     * Drops the connection (or ends a pending backoff) and dials again at once: the transport
     * then presents the certificate the identity record holds now (src/renewal.ts).
     */
    async reconnect(): Promise<void> {
        this.wake = true
        this.attempt = 0
        const s = this.session
        if (s !== null) await s.close()
    }

    private now(): number {
        return this.board.clock.monotonicMs()
    }

    private emit(e: SessionEvent): void {
        this.onEvent(e)
    }

    private beginOutage(): void {
        if (this.outageStart >= 0) return
        this.outageStart = this.now()
        this.outageDropped = 0
        this.statsOutages++
        this.emit({ event: "outage-start", atMs: this.outageStart })
    }

    private async connectOnce(): Promise<MqttSession | null> {
        this.wake = false
        const t = this.config.transport
        const options: MqttConnectOptions = {
            host: this.config.connectHost === undefined ? t.brokerHost : this.config.connectHost,
            port: t.brokerPort,
            clientId: this.config.deviceId,
            serverName: t.brokerHost,
            caPem: this.caPem,
            keepAliveSec: t.keepAliveSec,
            auth: this.auth,
            token: this.auth === "token" ? this.config.token : undefined,
            connectTimeoutMs:
                this.config.connectTimeoutMs === undefined
                    ? DEFAULT_CONNECT_TIMEOUT_MS
                    : this.config.connectTimeoutMs,
            maxPayload: t.maxPayload,
        }
        let s: MqttSession | null = null
        try {
            s = await this.mqtt.connect(options)
            for (let i = 0; i < this.routes.length; i++)
                await s.subscribe(this.topic(this.routes[i].channel) + "/#", 1)
        } catch (e) {
            if (s !== null) await s.close()
            this.statsFailed++
            const code = codeOf(e)
            // A certificate or authorisation failure will not heal by itself: wait longest.
            if (code === "tls" || code === "auth" || code === "refused") this.attempt = 64
            if (this.stopped) return null
            this.beginOutage()
            const retryInMs = this.nextDelay()
            this.emit({
                event: "connect-failed",
                atMs: this.now(),
                code: code,
                retryInMs: retryInMs,
            })
            return null
        }
        if (this.stopped) {
            await s.close()
            return null
        }
        this.session = s
        this.attempt = 0
        this.statsConnects++
        this.emit({ event: "connected", atMs: this.now() })
        if (this.outageStart >= 0) {
            this.emit({
                event: "outage-end",
                atMs: this.now(),
                durationMs: this.now() - this.outageStart,
                dropped: this.outageDropped,
            })
            this.outageStart = -1
            this.outageDropped = 0
        }
        return s
    }

    /** The next backoff: min * 2^attempt capped at max, then a uniform jitter in [d/2, d]. */
    private nextDelay(): number {
        const t = this.config.transport
        let d = t.backoffMinMs
        for (let i = 0; i < this.attempt && d < t.backoffMaxMs; i++) d = d * 2
        if (d > t.backoffMaxMs) d = t.backoffMaxMs
        const r = readU32(this.board.rng.bytes(4), 0) / 4294967296
        this.pendingDelay = Math.floor(d / 2 + (d / 2) * r)
        return this.pendingDelay
    }

    private async backoff(): Promise<void> {
        let remaining = this.pendingDelay >= 0 ? this.pendingDelay : this.nextDelay()
        this.pendingDelay = -1
        if (this.attempt < 64) this.attempt++
        while (remaining > 0 && !this.stopped && !this.wake) {
            const slice = remaining > SLEEP_SLICE_MS ? SLEEP_SLICE_MS : remaining
            await this.board.clock.sleep(slice)
            remaining -= slice
        }
    }

    private async receiveLoop(s: MqttSession): Promise<void> {
        while (!this.stopped) {
            const message = await s.receive()
            if (message === null) return
            await this.dispatch(message)
        }
    }

    /** Verify first, then act: topic, size and decoding are checked before any handler runs. */
    private async dispatch(message: MqttMessage): Promise<void> {
        let channel = ""
        try {
            const parsed = parseInboundTopic(this.config.deviceId, message.topic)
            channel = parsed.channel
            if (message.payload.length > this.config.transport.maxPayload)
                throw new MessageError("size", "payload")
            const route = this.findRoute(parsed.channel)
            if (route === null) throw new MessageError("topic", "no such channel")
            await route.handle(message.payload, parsed.path)
        } catch (e) {
            this.statsRejected++
            const rejected = e instanceof MessageError
            this.emit({
                event: rejected ? "inbound-rejected" : "inbound-failed",
                atMs: this.now(),
                code: rejected ? (e as MessageError).check : codeOf(e),
                channel: channel,
            })
        }
    }

    private findRoute(channel: string): Route | null {
        for (let i = 0; i < this.routes.length; i++)
            if (this.routes[i].channel === channel) return this.routes[i]
        return null
    }
}

function noEvent(e: SessionEvent): void {}

/** Binds a decoder to a handler outside any class, so no arrow function uses `this`. */
function makeHandler<T>(
    decode: (payload: Buffer, path: string[]) => T,
    handle: (value: T, path: string[]) => Promise<void>
): (payload: Buffer, path: string[]) => Promise<void> {
    return async function (payload: Buffer, path: string[]): Promise<void> {
        const value = decode(payload, path)
        await handle(value, path)
    }
}
