/**
 * The portable MQTT session on a fake transport and the virtual clock: refusal of insecure
 * boards, reconnect with jittered exponential backoff, the bounded offline queue delivered in
 * order, outage events, and inbound validation (GP-TM-17, GP-TM-39, GP-TM-43, GP-TM-54).
 */

import { describe, expect, it } from "vitest"
import { parseProfile } from "../../boot/profile"
import { Board } from "../../hal/board"
import { UnsupportedError } from "../../hal/errors"
import { MqttTransport } from "../../hal/mqtt"
import { VirtualClock } from "../../sim/clock"
import { SimCrypto } from "../../sim/crypto"
import { SimRng } from "../../sim/rng"
import { CommandEnvelope, decodeCommand } from "../../src/messages"
import { DeviceSession, SessionConfig, SessionEvent, TransportPolicy } from "../../src/session"
import { testProfileJson } from "../../sim/testing"
import { FakeMqtt } from "./fake-mqtt"

const POLICY: TransportPolicy = {
    ...parseProfile(testProfileJson()).transport,
    queueLimit: 20,
    backoffMinMs: 500,
    backoffMaxMs: 8000,
    maxPayload: 1024,
}

/** What the ESP32 DeviceScript runtime offers: no client certificate, no CA pinning. */
const TOKEN_ONLY = { clientCertificate: false, caPinning: false, tls13: false }

interface Rig {
    clock: VirtualClock
    mqtt: FakeMqtt
    board: Board
    session: DeviceSession
    events: SessionEvent[]
    running: Promise<void>
}

function makeBoard(clock: VirtualClock, mqtt?: MqttTransport): Board {
    return { target: "sim", crypto: new SimCrypto(), clock, rng: new SimRng(), mqtt }
}

function config(extra: Partial<SessionConfig> = {}): SessionConfig {
    return { deviceId: "dev-a", caPem: "-----BEGIN CERTIFICATE-----", transport: POLICY, ...extra }
}

async function rig(setup?: (s: DeviceSession) => void): Promise<Rig> {
    const clock = new VirtualClock()
    const mqtt = new FakeMqtt(clock)
    const board = makeBoard(clock, mqtt)
    const events: SessionEvent[] = []
    const session = new DeviceSession(board, config(), (e) => events.push(e))
    if (setup) setup(session)
    const running = session.run()
    await clock.advance(0)
    return { clock, mqtt, board, session, events, running }
}

async function stop(r: Rig): Promise<void> {
    await r.session.stop()
    await r.clock.advance(POLICY.backoffMaxMs)
    await r.running
}

describe("refusal of insecure boards (GP-TM-39)", () => {
    it("GP-TM-39: a board without a TLS MQTT transport gets no session", () => {
        const board = makeBoard(new VirtualClock())

        expect(() => new DeviceSession(board, config())).toThrow(UnsupportedError)
    })

    it("GP-TM-39: a board without client certificates and without a token is refused", () => {
        const clock = new VirtualClock()
        const mqtt = new FakeMqtt(clock, TOKEN_ONLY)

        expect(() => new DeviceSession(makeBoard(clock, mqtt), config())).toThrow(UnsupportedError)
    })

    it("GP-TM-39: such a board connects over TLS with its per-device token if set", async () => {
        const clock = new VirtualClock()
        const mqtt = new FakeMqtt(clock, TOKEN_ONLY)
        const withToken = config({ token: "t0k3n-0123456789abcdef" })
        const session = new DeviceSession(makeBoard(clock, mqtt), withToken)

        const running = session.run()
        await clock.advance(0)

        expect(mqtt.options[0].auth).toBe("token")
        expect(mqtt.options[0].token).toBe("t0k3n-0123456789abcdef")
        expect(mqtt.options[0].caPem).toBe("")
        await session.stop()
        await running
    })

    it("GP-TM-39: a certificate board that cannot pin the fleet CA is refused", () => {
        const clock = new VirtualClock()
        const mqtt = new FakeMqtt(clock, { clientCertificate: true, caPinning: false, tls13: true })

        expect(() => new DeviceSession(makeBoard(clock, mqtt), config())).toThrow(UnsupportedError)
    })

    it("GP-TM-43: connects by certificate, as itself, to the pinned broker name", async () => {
        const decode = (p: Buffer) => decodeCommand(p, POLICY.maxPayload)
        const r = await rig((s) => s.route("cmd", decode, async () => undefined))

        const o = r.mqtt.options[0]
        expect(o.auth).toBe("certificate")
        expect(o.clientId).toBe("dev-a")
        expect(o.serverName).toBe(POLICY.brokerHost)
        expect(r.mqtt.subscriptions).toEqual(["bulwark/dev-a/cmd/#"])
        await stop(r)
    })
})

describe("broker outage (GP-TM-17)", () => {
    it("GP-TM-17: the local loop keeps time; the queue is bounded, sent in order", async () => {
        const r = await rig()
        let ticks = 0
        let seq = 0
        let on = true
        const local = async () => {
            while (on) {
                await r.clock.sleep(100)
                ticks++
                await r.session.publish("telemetry", Buffer.from(String(seq++)), true)
            }
        }
        const loop = local()
        await r.clock.advance(1000)
        expect(r.mqtt.delivered.length).toBe(10)

        r.mqtt.goDown()
        await r.clock.advance(10000)
        const ticksDuringOutage = ticks - 10
        expect(ticksDuringOutage).toBe(100)
        expect(r.session.stats().queued).toBe(POLICY.queueLimit)
        expect(r.session.stats().dropped).toBe(100 - POLICY.queueLimit)

        r.mqtt.comeBack()
        await r.clock.advance(POLICY.backoffMaxMs)
        on = false
        await r.clock.advance(100)
        await loop
        const got = r.mqtt.delivered.map((d) => Number(d.payload.toString()))
        const afterOutage = got.slice(10)
        expect(got.slice(0, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        for (let i = 1; i < afterOutage.length; i++)
            expect(afterOutage[i]).toBe(afterOutage[i - 1] + 1)
        expect(afterOutage[afterOutage.length - 1]).toBe(seq - 1)
        expect(got.length + r.session.stats().dropped).toBe(seq)
        expect(r.session.stats().queued).toBe(0)
        await stop(r)
    })

    it("GP-TM-17: an outage is recorded: start, one overflow, end with its losses", async () => {
        const r = await rig()

        r.mqtt.goDown()
        await r.clock.advance(0)
        for (let i = 0; i < POLICY.queueLimit + 5; i++)
            await r.session.publish("telemetry", Buffer.from("x"), true)
        await r.clock.advance(5000)
        r.mqtt.comeBack()
        await r.clock.advance(POLICY.backoffMaxMs)

        const names = r.events.map((e) => e.event)
        expect(names.filter((n) => n === "outage-start")).toHaveLength(1)
        expect(names.filter((n) => n === "queue-overflow")).toHaveLength(1)
        const end = r.events.find((e) => e.event === "outage-end")!
        expect(end.dropped).toBe(5)
        expect(end.durationMs).toBeGreaterThanOrEqual(5000)
        expect(JSON.stringify(r.events)).not.toMatch(/BEGIN|token/)
        await stop(r)
    })

    it("GP-TM-17: reconnects with jittered exponential backoff capped at the maximum", async () => {
        const r = await rig()

        r.mqtt.goDown()
        await r.clock.advance(60000)

        const times = r.mqtt.attempts.slice(1)
        expect(times.length).toBeGreaterThan(6)
        for (let k = 1; k < times.length; k++) {
            const d = Math.min(POLICY.backoffMaxMs, POLICY.backoffMinMs * 2 ** (k - 1))
            const gap = times[k] - times[k - 1]
            expect(gap).toBeGreaterThanOrEqual(Math.floor(d / 2))
            expect(gap).toBeLessThanOrEqual(d)
        }
        const gaps = times.slice(1).map((t, k) => t - times[k])
        expect(new Set(gaps).size).toBeGreaterThan(1)
        await stop(r)
    })

    it("GP-TM-44: after a refused certificate or authorisation it waits the longest", async () => {
        const r = await rig()

        r.mqtt.failCode = "auth"
        r.mqtt.goDown()
        await r.clock.advance(3 * POLICY.backoffMaxMs)

        const times = r.mqtt.attempts.slice(1)
        for (let k = 1; k < times.length; k++)
            expect(times[k] - times[k - 1]).toBeGreaterThanOrEqual(POLICY.backoffMaxMs / 2)
        expect(r.events.some((e) => e.event === "connect-failed" && e.code === "auth")).toBe(true)
        await stop(r)
    })
})

describe("inbound validation (GP-TM-54)", () => {
    async function commandRig() {
        const handled: CommandEnvelope[] = []
        const r = await rig((s) =>
            s.route(
                "cmd",
                (payload) => decodeCommand(payload, POLICY.maxPayload),
                async (c) => {
                    handled.push(c)
                }
            )
        )
        return { r, handled }
    }

    it("GP-TM-54: a valid command reaches its handler decoded", async () => {
        const { r, handled } = await commandRig()

        r.mqtt.inject("bulwark/dev-a/cmd/x", Buffer.from('{"v":1,"id":"c1","name":"ping"}'))
        await r.clock.advance(0)

        expect(handled).toEqual([{ id: "c1", name: "ping", args: {} }])
        await stop(r)
    })

    it("GP-TM-54: malformed, oversized and foreign messages never reach a handler", async () => {
        const { r, handled } = await commandRig()
        const cases: [string, Buffer, string][] = [
            ["bulwark/dev-a/cmd/x", Buffer.from('{"v":1,"id":"c1"'), "json"],
            ["bulwark/dev-a/cmd/x", Buffer.from('{"v":2,"id":"c1","name":"ping"}'), "version"],
            ["bulwark/dev-a/cmd/x", Buffer.alloc(POLICY.maxPayload + 1, 0x20), "size"],
            ["bulwark/dev-b/cmd/x", Buffer.from('{"v":1,"id":"c1","name":"ping"}'), "topic"],
            ["bulwark/dev-a/other", Buffer.from('{"v":1,"id":"c1","name":"ping"}'), "topic"],
            ["bulwark/dev-a/cmd/x", Buffer.from("[".repeat(20) + "]".repeat(20)), "depth"],
        ]

        for (const [topic, payload] of cases) r.mqtt.inject(topic, payload)
        await r.clock.advance(0)

        expect(handled).toEqual([])
        const rejected = r.events.filter((e) => e.event === "inbound-rejected").map((e) => e.code)
        expect(rejected).toEqual(cases.map((c) => c[2]))
        expect(r.session.stats().rejectedInbound).toBe(cases.length)
        expect(r.session.isConnected()).toBe(true)
        await stop(r)
    })
})
