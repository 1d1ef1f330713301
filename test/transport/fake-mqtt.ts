/**
 * An in-memory MqttTransport for the session's unit tests: a broker that a test takes down
 * and brings back, records every connect attempt on the board clock and every delivered
 * publish in order, and injects inbound messages. No network, no real time.
 */

import { Clock } from "../../hal/clock"
import { TransportError } from "../../hal/errors"
import {
    MqttCapabilities,
    MqttConnectOptions,
    MqttMessage,
    MqttQos,
    MqttSession,
    MqttTransport,
} from "../../hal/mqtt"

export interface Delivered {
    topic: string
    payload: Buffer
    qos: MqttQos
}

const FULL_CAPABILITIES = { clientCertificate: true, caPinning: true, tls13: true }

class FakeSession implements MqttSession {
    open = true
    private inbox: MqttMessage[] = []
    private readers: ((m: MqttMessage | null) => void)[] = []

    constructor(private readonly broker: FakeMqtt) {}

    async publish(topic: string, payload: Buffer, qos: MqttQos): Promise<void> {
        if (!this.open) throw new TransportError("closed", "session closed")
        this.broker.delivered.push({ topic, payload, qos })
    }

    async subscribe(filter: string): Promise<void> {
        if (!this.open) throw new TransportError("closed", "session closed")
        if (this.broker.refuseSubscriptions)
            throw new TransportError("refused", "subscription refused")
        this.broker.subscriptions.push(filter)
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
        this.drop()
    }

    deliver(message: MqttMessage): void {
        const reader = this.readers.shift()
        if (reader) reader(message)
        else this.inbox.push(message)
    }

    drop(): void {
        if (!this.open) return
        this.open = false
        for (const r of this.readers.splice(0)) r(null)
    }
}

export class FakeMqtt implements MqttTransport {
    up = true
    /** Error code of refused connects while `up` is false ("closed": broker unreachable). */
    failCode = "closed"
    refuseSubscriptions = false
    readonly attempts: number[] = []
    readonly options: MqttConnectOptions[] = []
    readonly delivered: Delivered[] = []
    readonly subscriptions: string[] = []
    private sessions: FakeSession[] = []

    constructor(
        private readonly clock: Clock,
        private readonly caps: MqttCapabilities = FULL_CAPABILITIES
    ) {}

    capabilities(): MqttCapabilities {
        return this.caps
    }

    async connect(options: MqttConnectOptions): Promise<MqttSession> {
        this.attempts.push(this.clock.monotonicMs())
        this.options.push(options)
        if (!this.up) throw new TransportError(this.failCode, "broker unreachable")
        const session = new FakeSession(this)
        this.sessions.push(session)
        return session
    }

    /** The broker goes away: every open session ends and new connects fail. */
    goDown(): void {
        this.up = false
        for (const s of this.sessions) s.drop()
        this.sessions = []
    }

    comeBack(): void {
        this.up = true
    }

    /** Delivers `payload` on `topic` to the newest open session. */
    inject(topic: string, payload: Buffer): void {
        const open = this.sessions.filter((s) => s.open)
        if (open.length === 0) throw new Error("no open session")
        open[open.length - 1].deliver({ topic, payload })
    }
}
