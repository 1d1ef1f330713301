/**
 * Signed update status reports (docs/update-format.md, "Status report"; GP-TM-41, GP-TM-18):
 * the device signs them with the telemetry signer under their own label, so a telemetry
 * envelope never verifies as a status nor the reverse; the publisher counts only statuses
 * signed by the targeted device's registered key, for that device, in (boot, seq) order,
 * and counts and shows the others.
 */


import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { MqttSession } from "../../hal/mqtt"
import { encodeStatus } from "../../ota/agent-wire"
import { DeviceProgress, OperatorCredentials, publishUpdate, PublishError } from "../../ota/host/publisher"
import { readStatus, StatusAuthError } from "../../ota/host/status-auth"
import { RunningBroker } from "../../sim/broker"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { healthBody, topicPayload } from "../../src/app-telemetry"
import { decodeTelemetry, TELEMETRY_LABEL, TelemetryError, TelemetrySigner } from "../../src/telemetry"
import { verifyTelemetryBytes } from "../../tools/telemetry"
import { keyA, makeImage } from "./helpers"
import { hostSigner } from "./status-signing"
import { FakeDevice, fakeDevice, OperatorBroker, operatorBroker } from "./fake-device"
import {
    connectOptions,
    deviceCredentials,
    Fleet,
    operatorCredentials,
    removeTempDirs,
    transportFor,
} from "../transport/fixtures"

const CONFIRMED = encodeStatus({ state: "confirmed", seq: 900, version: "2.0.0" }, "2.0.0")

async function rejection(p: Promise<unknown>): Promise<string> {
    try {
        await p
    } catch (err) {
        if (err instanceof StatusAuthError || err instanceof TelemetryError) return err.check
        throw err
    }
    return "accepted"
}

describe("status envelopes on the device", () => {
    afterAll(() => cleanupTestBoards())

    it("GP-TM-41: a telemetry envelope replayed on the status topic does not verify as a status", async () => {
        const board = await makeTestBoard()
        const publicKey = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
        const signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock, "dev-se")
        const health = healthBody({
            version: "1.0.0", slot: "a", trial: false, uptimeMs: 5, selfTest: true, update: "idle",
        })
        const telemetry = (await topicPayload(signer, "telemetry", health, 16384))!
        // Even a telemetry envelope whose body is a status report's JSON is not a status.
        const statusAsTelemetry = (await topicPayload(signer, "telemetry", CONFIRMED, 16384))!
        const status = (await topicPayload(signer, "ota/status", CONFIRMED, 16384))!
        const source = { deviceId: "dev-se", publicKey, after: null }

        expect(await rejection(readStatus(telemetry, source))).toBe("signature")
        expect(await rejection(readStatus(statusAsTelemetry, source))).toBe("signature")
        const read = await readStatus(status, source)
        expect(read.status).toMatchObject({ state: "confirmed", version: "2.0.0" })
        // One (boot, seq) order for both kinds: the status came third.
        expect(read.position).toEqual({ boot: decodeTelemetry(telemetry).message.boot, seq: 3 })
        // Nor does a status pass as telemetry.
        const asTelemetry = verifyTelemetryBytes(publicKey, status, { deviceId: null, after: null })
        expect(await rejection(asTelemetry)).toBe("signature")
        expect(await verifyTelemetryBytes(publicKey, telemetry, { deviceId: null, after: null }))
            .toMatchObject({ deviceId: "dev-se", seq: 1 })
        board.close()
    })

    it("GP-TM-41: a status the element cannot sign is not sent, never sent unsigned", async () => {
        const board = await makeTestBoard()
        const signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock, "dev-nokey")
        const lines: string[] = []
        expect(await topicPayload(signer, "ota/status", CONFIRMED, 16384, (l) => lines.push(l))).toBeNull()
        expect(lines).toEqual(["status report not signed (identity): not sent"])
        board.close()
    })
})

let fleet: Fleet
let broker: RunningBroker
let operator: OperatorCredentials
let ob: OperatorBroker

describe("publisher: statuses that do not verify", () => {
    beforeAll(async () => {
        ob = await operatorBroker("OTA status fleet")
        ;({ fleet, broker, operator } = ob)
    })

    afterAll(async () => {
        await broker?.close()
        removeTempDirs()
    })

    /** A device session (host-made key) that waits for its offer, and its status signer. */
    function offeredDevice(id: string): Promise<FakeDevice> {
        return fakeDevice(ob, id, [{ suffix: "ota/offer", qos: 1 }])
    }

    /** Someone else on the broker: an operator session that can publish under bulwark/. */
    async function forger(): Promise<MqttSession> {
        const creds = await operatorCredentials(fleet.ca, "forger")
        return await transportFor(creds).connect(connectOptions(broker.port, fleet.ca, creds.id))
    }

    async function until(progress: DeviceProgress[], test: (p: DeviceProgress) => boolean) {
        for (let i = 0; i < 200; i++) {
            if (progress.some(test)) return
            await new Promise((r) => setTimeout(r, 25))
        }
        throw new Error("no such progress")
    }

    it(`GP-TM-41: a forged status claiming "confirmed" (unsigned, or signed by another device's key) is not counted; the campaign does not report the device as updated`, async () => {
        const id = "dev-forged"
        const device = await offeredDevice(id)
        const other = await offeredDevice("dev-other")
        const image = await makeImage({ version: "2.0.0", counter: 2 })
        const progress: DeviceProgress[] = []
        const log: string[] = []
        const campaign = publishUpdate({
            broker: { host: "127.0.0.1", port: broker.port },
            serverName: "localhost",
            caPem: fleet.ca.certPem,
            operator,
            image,
            key: keyA,
            devices: [id],
            deviceKeys: { [id]: device.signer.publicKey, "dev-other": other.signer.publicKey },
            sequence: 900,
            timeoutMs: 30000,
            onProgress: (p) => progress.push(p),
            log: (l) => log.push(l),
        })
        await device.next("ota/offer")
        const topic = "bulwark/" + id + "/ota/status"
        const attacker = await forger()
        // Unsigned; signed by another device's key; signed by the right key but for another
        // device; the right key but as telemetry.
        await attacker.publish(topic, CONFIRMED, 1)
        await attacker.publish(topic, other.signer.envelope(CONFIRMED, { deviceId: id, boot: 9, seq: 1 }), 1)
        await attacker.publish(topic, device.signer.envelope(CONFIRMED, { deviceId: "dev-other", boot: 9, seq: 2 }), 1)
        await attacker.publish(topic, device.signer.envelope(CONFIRMED, { boot: 9, seq: 3, label: TELEMETRY_LABEL }), 1)
        await until(progress, (p) => p.rejectedStatuses === 4)
        expect(progress.every((p) => p.state !== "confirmed")).toBe(true)

        // A genuine status, then an older genuine one and the same one again: out of order.
        const accepted = device.signer.envelope(
            encodeStatus({ state: "downloading", seq: 900, offset: 100, size: image.length }, "1.0.0"),
            { boot: 5, seq: 10 })
        await device.session.publish(topic, accepted, 1)
        await until(progress, (p) => p.state === "downloading")
        await attacker.publish(topic, device.signer.envelope(CONFIRMED, { boot: 5, seq: 9 }), 1)
        await attacker.publish(topic, accepted, 1)
        await until(progress, (p) => p.rejectedStatuses === 6)
        await device.session.publish(topic, device.signer.envelope(
            encodeStatus({ state: "refused", seq: 900, check: "test-done" }, "1.0.0"), { boot: 5, seq: 11 }), 1)
        const [result] = await campaign
        await attacker.close()
        await device.session.close()
        await other.session.close()

        expect(result).toMatchObject({
            deviceId: id, ok: false, state: "refused", check: "test-done", running: "1.0.0",
            rejectedStatuses: 6, statusAuth: "signed",
        })
        expect(log.filter((l) => l.includes("rejected"))).toEqual([
            id + ": status rejected (unsigned)",
            id + ": status rejected (signature)",
            id + ": status rejected (device)",
            id + ": status rejected (signature)",
            id + ": status rejected (order)",
            id + ": status rejected (replayed)",
        ])
    })

    it("GP-TM-41: forged confirmations alone leave the device not updated at the deadline", async () => {
        const id = "dev-silent"
        const device = await offeredDevice(id)
        const stranger = hostSigner((await deviceCredentials(fleet.ca, "dev-stranger")).keyPem, id)
        const campaign = publishUpdate({
            broker: { host: "127.0.0.1", port: broker.port },
            serverName: "localhost",
            caPem: fleet.ca.certPem,
            operator,
            image: await makeImage({ version: "2.0.0", counter: 2 }),
            key: keyA,
            devices: [id],
            deviceKeys: { [id]: device.signer.publicKey },
            sequence: 900,
            timeoutMs: 2500,
        })
        await device.next("ota/offer")
        const attacker = await forger()
        await attacker.publish("bulwark/" + id + "/ota/status", CONFIRMED, 1)
        await attacker.publish("bulwark/" + id + "/ota/status", stranger.envelope(CONFIRMED, { boot: 1, seq: 1 }), 1)
        const [result] = await campaign
        await attacker.close()
        await device.session.close()

        expect(result).toMatchObject({ ok: false, state: "timeout", rejectedStatuses: 2, lastRejected: "signature" })
    })

    it("GP-TM-41: a device without a key is refused before anything is sent, unless unsigned statuses are accepted explicitly", async () => {
        const id = "dev-keyless"
        const base = {
            broker: { host: "127.0.0.1", port: broker.port },
            serverName: "localhost",
            caPem: fleet.ca.certPem,
            operator,
            image: await makeImage({ version: "2.0.0", counter: 2 }),
            key: keyA,
            devices: [id],
            sequence: 900,
            timeoutMs: 30000,
        }
        const refused = await publishUpdate(base).catch((e: unknown) => e)
        expect(refused).toBeInstanceOf(PublishError)
        expect((refused as PublishError).check).toBe("keys")
        expect((refused as PublishError).message).toContain(id)

        const device = await offeredDevice(id)
        const campaign = publishUpdate({ ...base, acceptUnsignedStatus: true })
        await device.next("ota/offer")
        await device.session.publish("bulwark/" + id + "/ota/status",
            encodeStatus({ state: "refused", seq: 900, check: "test-done" }, "1.0.0"), 1)
        const [result] = await campaign
        await device.session.close()
        expect(result).toMatchObject({ state: "refused", check: "test-done", statusAuth: "unsigned", rejectedStatuses: 0 })
    })
})
