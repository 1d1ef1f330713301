/**
 * Updates end to end: provisioned sim devices run by the sim runner (boot stub, verified
 * app bundle, mutual-TLS session) and the publisher as an operator, through the embedded
 * broker on loopback. v1 to v2 with a trial boot, confirm and OTP counter; an unhealthy v2
 * and a hung v2 (reset by the watchdog) rolled back and reported; user preferences kept;
 * chunks asked for with range requests, far fewer publishes than chunks.
 * GP-TM-05, 06, 16, 18, 19, 20, 46.
 */

import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { runBootStub } from "../../boot/stub"
import { MqttMessage } from "../../hal/mqtt"
import { RunningBroker, startBroker } from "../../sim/broker"
import { SimBoard } from "../../sim/board"
import { DeviceHandle, RunnerOptions, startDevice } from "../../sim/runner"
import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { buildAppBundle } from "../../tools/app-build"
import { issueOperatorCertificate } from "../../tools/ca"
import { readOperator } from "../../tools/commands/ota"
import { provision, readRegistry, registryDeviceKeys } from "../../tools/provision"
import { publishUpdate, DeviceProgress, OperatorCredentials } from "../../ota/host/publisher"
import { BROKER_TRANSPORT, BROKER_UPDATE, keyA, makeImage, watchTopic } from "./helpers"
import { Fleet, makeFleet, removeTempDirs, tempDir } from "../transport/fixtures"
import { auditRecords } from "../app/harness"
import { readStatus } from "../../ota/host/status-auth"

let broker: RunningBroker
let fleet: Fleet
let caDir: string
let caPem: string
let operator: OperatorCredentials
const bundles: Record<string, Buffer> = {}
const running: DeviceHandle[] = []

const PROFILE = testProfileJson({
    slotSize: 262144,
    profile: {
        update: BROKER_UPDATE,
        transport: BROKER_TRANSPORT,
    },
})

beforeAll(async () => {
    const work = tempDir("bulwark-ota-e2e-")
    for (const [name, entry] of [
        ["v1", undefined],
        ["v2", resolve(__dirname, "fixtures/app-v2.ts")],
        ["unhealthy", resolve(__dirname, "fixtures/app-unhealthy.ts")],
        ["hung", resolve(__dirname, "fixtures/app-hung.ts")],
    ] as [string, string | undefined][]) {
        const built = await buildAppBundle(entry, join(work, name + ".js"))
        bundles[name] = readFileSync(built.path)
    }
    fleet = await makeFleet("OTA test fleet")
    caDir = fleet.caDir
    caPem = fleet.ca.certPem
    await issueOperatorCertificate(fleet.ca, "release", join(work, "operator"))
    operator = readOperator(join(work, "operator"))
    broker = await startBroker({ caDir, port: 0 })
})

afterAll(async () => {
    for (const d of running) await d.stop()
    await broker?.close()
    cleanupTestBoards()
    removeTempDirs()
})

/**
 * A ROM watchdog short enough for a test, long enough for v1 to reach its main loop (the app
 * then arms its own, ROM_WATCHDOG_MS-like timeout).
 */
const TEST_WATCHDOG_MS = 2000

/** A provisioned device running v1 (the app bundle, signed as 1.0.0) under the runner. */
async function newDevice(
    prefs?: Buffer,
    options: RunnerOptions = {}
): Promise<{ id: string; dir: string; device: DeviceHandle }> {
    const dir = join(tempDir("bulwark-ota-dev-"), "dev")
    const board = await SimBoard.create(dir, { profile: PROFILE, trust: [keyA.anchor], counter: 1 })
    await board.debugFlash("slot-a", await makeImage({ version: "1.0.0", counter: 1, payload: bundles.v1 }))
    if (prefs) await board.flash.partition("prefs").program(0, prefs)
    board.close()
    const { deviceId } = await provision({ devDir: dir, caDir, iterations: 1000 })
    const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port }, options)
    running.push(device)
    await device.waitFor((d) => d.app()?.connected === true, 20000, "v1 connected")
    return { id: deviceId, dir, device }
}

async function publish(
    devices: string[],
    image: Buffer,
    progress?: DeviceProgress[],
    chunkTableSize?: number
) {
    return await publishUpdate({
        chunkTableSize,
        broker: { host: "127.0.0.1", port: broker.port },
        serverName: "localhost",
        caPem,
        operator,
        image,
        key: keyA,
        devices,
        deviceKeys: registryDeviceKeys(readRegistry(caDir), devices).keys,
        timeoutMs: 60000,
        onProgress: (p) => progress?.push(p),
    })
}

/** An operator session on the test broker that keeps every message on `topic`. */
function watch(topic: string): Promise<{ stop: () => Promise<MqttMessage[]> }> {
    return watchTopic(fleet.ca, broker.port, topic)
}

async function stopped(device: DeviceHandle): Promise<void> {
    await device.stop()
    running.splice(running.indexOf(device), 1)
}

describe("updates through the broker", () => {
    it("GP-TM-18: v1 to v2 end to end: trial boot, confirm, OTP counter raised, v1 never boots again", async () => {
        const { id, dir, device } = await newDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.v2 })
        const progress: DeviceProgress[] = []
        const statuses = await watch("bulwark/" + id + "/ota/status")

        const [result] = await publish([id], v2, progress)
        const seen = await statuses.stop()

        expect(result).toMatchObject({ deviceId: id, ok: true, state: "confirmed", running: "2.0.0",
            rejectedStatuses: 0, statusAuth: "signed" })
        // GP-TM-41: every status the device sent is an envelope signed as a status, in order.
        const key = registryDeviceKeys(readRegistry(caDir), [id]).keys[id]
        let after: { boot: number; seq: number } | null = null
        for (const m of seen) {
            const read = await readStatus(m.payload, { deviceId: id, publicKey: key, after })
            after = read.position
        }
        expect(seen.length).toBeGreaterThan(2)
        expect(progress.some((p) => p.offset === v2.length)).toBe(true)
        const boots = device.boots()
        expect(boots[0]).toMatchObject({ version: "1.0.0", trial: false, endedBy: "update" })
        expect(boots[1]).toMatchObject({ version: "2.0.0", trial: true, booted: "b" })
        expect(boots[1].app!.app).toBe("bulwark-app-v2")
        await device.waitFor((d) => d.app()?.confirmed === true, 5000, "confirmed")
        await stopped(device)

        const updates = (await auditRecords(dir))
            .filter((r) => r.event === "update")
            .map((r) => r.outcome + " " + r.detail.split(" ")[0])
        const board = await SimBoard.open(dir)
        expect(await board.otp.readCounter()).toBe(2)
        expect(updates).toEqual(["info ota-accepted", "info ota-installed", "success ota-confirmed"])
        await board.debugFlash("slot-b", Buffer.from("v2 wiped out"))
        const config = { deviceClass: PROFILE.deviceClass as string, trialAttempts: 3, signaturePolicy: "classical" as const }
        const decision = await runBootStub(board, config, false)
        expect(decision.recovery).toBe(true)
        expect(decision.refused).toContainEqual(expect.objectContaining({ slot: "a", check: "security-counter" }))
        board.close()
    })

    it("GP-TM-06: a v2 whose health check fails is rolled back automatically and the rollback is reported", async () => {
        const { id, device } = await newDevice()
        const bad = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.unhealthy })

        const [result] = await publish([id], bad)

        expect(result).toMatchObject({ ok: false, state: "reverted", check: "reverted" })
        const boots = device.boots()
        const trials = boots.filter((b) => b.trial)
        expect(trials.length).toBe(3)
        expect(trials.every((b) => b.app!.app === "bulwark-app-unhealthy")).toBe(true)
        expect(boots[boots.length - 1]).toMatchObject({ version: "1.0.0", trial: false, booted: "a" })
        await stopped(device)
    })

    it("GP-TM-16: a v2 hung on its trial is reset by the watchdog, reverted and reported", async () => {
        const { id, device } = await newDevice(undefined, { watchdogMs: TEST_WATCHDOG_MS })
        const hung = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.hung })

        const [result] = await publish([id], hung)

        expect(result).toMatchObject({ ok: false, state: "reverted", check: "reverted" })
        expect(result.running).toBe("1.0.0")
        const boots = device.boots()
        const trials = boots.filter((b) => b.trial)
        expect(trials.map((b) => [b.app!.app, b.endedBy])).toEqual([
            ["bulwark-app-hung", "watchdog"],
            ["bulwark-app-hung", "watchdog"],
            ["bulwark-app-hung", "watchdog"],
        ])
        expect(boots.filter((b) => !b.trial).every((b) => b.endedBy !== "watchdog")).toBe(true)
        expect(boots[boots.length - 1]).toMatchObject({ version: "1.0.0", trial: false, booted: "a" })
        await stopped(device)
    })

    it("GP-TM-18: a format 2 offer with a chunk table updates a device", async () => {
        const { id, device } = await newDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.v2 })

        const [result] = await publish([id], v2, undefined, BROKER_UPDATE.chunkSize)

        expect(result).toMatchObject({ ok: true, state: "confirmed", running: "2.0.0" })
        await stopped(device)
    })

    it("GP-TM-46: the device asks for N chunks with clearly fewer publishes than N", async () => {
        const { id, device } = await newDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.v2 })
        const chunks = Math.ceil(v2.length / BROKER_UPDATE.chunkSize)
        const requests = await watch("bulwark/" + id + "/ota/request")

        const [result] = await publish([id], v2)
        await device.waitFor((d) => d.app()?.confirmed === true, 5000, "confirmed")
        const seen = await requests.stop()

        expect(result).toMatchObject({ ok: true, state: "confirmed", running: "2.0.0" })
        expect(chunks).toBeGreaterThan(8)
        expect(seen.length).toBeGreaterThan(0)
        expect(seen.length * 3).toBeLessThanOrEqual(chunks)
        await stopped(device)
    })

    it("GP-TM-20: preferences set by the user before the update are unchanged after it", async () => {
        const prefs = Buffer.from("lang=de;units=si;alarm=07:30;.")
        const padded = Buffer.concat([prefs, Buffer.alloc(32 - prefs.length, 0x20)])
        const { id, dir, device } = await newDevice(padded)
        const before = readFlash(dir, "prefs")
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.v2 })

        const [result] = await publish([id], v2)
        await stopped(device)

        expect(result.ok).toBe(true)
        expect(readFlash(dir, "prefs")).toEqual(before)
        expect(readFlash(dir, "prefs").subarray(0, 32)).toEqual(padded)
    })

    it("GP-TM-19: a campaign updates every targeted device on its own and leaves the others alone", async () => {
        const a = await newDevice()
        const b = await newDevice()
        const c = await newDevice()
        const v2 = await makeImage({ version: "2.0.0", counter: 2, payload: bundles.v2 })

        const results = await publish([a.id, b.id], v2)

        expect(results.map((r) => [r.deviceId, r.ok, r.running])).toEqual([
            [a.id, true, "2.0.0"],
            [b.id, true, "2.0.0"],
        ])
        expect(c.device.boots().map((x) => x.version)).toEqual(["1.0.0"])
        await stopped(c.device)
        await stopped(a.device)
        await stopped(b.device)
    })
})

/** The bytes of a partition, read from the device's flash file with the board off. */
function readFlash(dir: string, name: string): Buffer {
    const flash = readFileSync(join(dir, "flash.bin"))
    const parts = (PROFILE.flash as { partitions: { name: string; size: number }[] }).partitions
    let base = 0
    for (const p of parts) {
        if (p.name === name) return flash.subarray(base, base + p.size)
        base += p.size
    }
    throw new Error("no partition " + name)
}

