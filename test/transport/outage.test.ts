/**
 * A provisioned sim board's session against the embedded broker, end to end: mutual TLS with
 * the key in the secure element, then a broker outage during which the device keeps queuing
 * within its bound, and a reconnect that delivers the queue in order (GP-TM-17, GP-TM-39).
 * Backoff runs on the board's virtual clock; the network is real loopback TLS.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MqttSession } from "../../hal/mqtt"
import { RunningBroker, startBroker } from "../../sim/broker"
import { SimBoard } from "../../sim/board"
import { simMqttTransport } from "../../sim/mqtt"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { PARTITION_IDENTITY, readIdentity } from "../../src/identity"
import { DeviceSession, SessionEvent } from "../../src/session"
import { provision } from "../../tools/provision"
import {
    connectOptions,
    Credentials,
    Fleet,
    makeFleet,
    operatorCredentials,
    removeTempDirs,
    transportFor,
} from "./fixtures"

let fleet: Fleet
let broker: RunningBroker
let board: SimBoard
let deviceId: string
let operator: Credentials

beforeAll(async () => {
    fleet = await makeFleet()
    broker = await startBroker({ caDir: fleet.caDir, port: 0 })
    const fresh = await makeTestBoard()
    fresh.close()
    const result = await provision({ devDir: fresh.dir, caDir: fleet.caDir, iterations: 1000 })
    deviceId = result.deviceId
    board = await SimBoard.open(fresh.dir, { mqtt: simMqttTransport })
    operator = await operatorCredentials(fleet.ca, "ops")
})

afterAll(async () => {
    board.close()
    await broker.close()
    cleanupTestBoards()
    removeTempDirs()
})

/** Alternates virtual time and real I/O until `done` holds. */
async function waitFor(done: () => boolean, stepMs = 50): Promise<void> {
    for (let i = 0; i < 600 && !done(); i++) {
        await board.advance(stepMs)
        await new Promise((r) => setTimeout(r, 5))
    }
    expect(done()).toBe(true)
}

async function operatorSubscribed(): Promise<MqttSession> {
    const options = connectOptions(broker.port, fleet.ca, operator.id)
    const s = await transportFor(operator).connect(options)
    await s.subscribe(`bulwark/${deviceId}/telemetry`, 1)
    return s
}

async function receiveAll(s: MqttSession, n: number): Promise<string[]> {
    const got: string[] = []
    for (let i = 0; i < n; i++) got.push((await s.receive())!.payload.toString())
    return got
}

describe("session over mutual TLS (GP-TM-17, GP-TM-39)", () => {
    it("GP-TM-17: queues through a broker outage, then delivers the queue in order", async () => {
        const partition = board.flash.partition(PARTITION_IDENTITY)
        const identity = (await readIdentity(board.crypto, board.secureElement, partition))!
        const events: SessionEvent[] = []
        const port = broker.port
        const session = new DeviceSession(
            board,
            {
                deviceId,
                caPem: identity.caPem,
                transport: {
                    ...board.profile.transport,
                    brokerPort: port,
                    queueLimit: 10,
                    backoffMinMs: 100,
                    backoffMaxMs: 1000,
                },
                connectHost: "127.0.0.1",
            },
            (e) => events.push(e)
        )
        let watcher = await operatorSubscribed()
        const running = session.run()
        await waitFor(() => session.isConnected())

        for (const n of [0, 1, 2]) await session.publish("telemetry", Buffer.from(String(n)), true)
        expect(await receiveAll(watcher, 3)).toEqual(["0", "1", "2"])

        await broker.close()
        await waitFor(() => !session.isConnected() && session.stats().failedAttempts > 0)
        for (let n = 3; n < 18; n++)
            await session.publish("telemetry", Buffer.from(String(n)), true)
        expect(session.stats()).toMatchObject({ queued: 10, dropped: 5 })

        broker = await startBroker({ caDir: fleet.caDir, port })
        watcher = await operatorSubscribed()
        await waitFor(() => session.isConnected() && session.stats().queued === 0)

        const expected = ["8", "9", "10", "11", "12", "13", "14", "15", "16", "17"]
        expect(await receiveAll(watcher, 10)).toEqual(expected)
        const end = events.find((e) => e.event === "outage-end")!
        expect(end.dropped).toBe(5)
        expect(events.map((e) => e.event)).toContain("outage-start")
        await watcher.close()
        await session.stop()
        await waitFor(() => true)
        await running
    })
})
