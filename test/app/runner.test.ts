/**
 * The security services in the running device: the real app bundle, verified-booted by the
 * sim runner, connected over mutual TLS to the embedded broker. Start-up audit records
 * (GP-TM-08), session events (GP-TM-17), the operator-signed audit export over MQTT
 * (GP-TM-55, GP-TM-53), the admin console on DEV/console.sock (GP-TM-08, GP-TM-25), remote
 * attestation over MQTT (GP-TM-56) and the tamper response across power-ups (GP-TM-31).
 */

import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"

import { p256 } from "@noble/curves/nist.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { readImageLayout } from "../../boot/image"
import { MqttMessage, MqttSession } from "../../hal/mqtt"
import { AuditRecord } from "../../src/audit/record"
import { SimBoard } from "../../sim/board"
import { connectConsoleSocket } from "../../sim/console"
import { RunningBroker, startBroker } from "../../sim/broker"
import { DeviceHandle, startDevice } from "../../sim/runner"
import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { buildAppBundle } from "../../tools/app-build"
import { signAttestRequest, verifyReportBytes } from "../../tools/attest"
import { signExportRequest } from "../../tools/audit-verify"
import { createCa, issueBrokerCertificate, loadCa, FleetCa } from "../../tools/ca"
import { provision } from "../../tools/provision"
import { keyA, makeImage } from "../ota/helpers"
import { connectOptions, operatorCredentials, removeTempDirs, tempDir, transportFor } from "../transport/fixtures"
import { verify } from "../services/support"
import { auditRecords } from "./harness"

const operatorKey = Buffer.from(p256.utils.randomSecretKey())
const operatorPub = Buffer.from(p256.getPublicKey(operatorKey, false))
const strangerKey = Buffer.from(p256.utils.randomSecretKey())

const PROFILE = testProfileJson({
    slotSize: 262144,
    profile: {
        services: { console: true, debugPort: false },
        security: { overrides: ["console"], operatorKeys: [operatorPub.toString("hex")] },
    },
})

let broker: RunningBroker
let ca: FleetCa
let caDir: string
let image: Buffer
let operator: MqttSession
const inbox: MqttMessage[] = []
const running: DeviceHandle[] = []

beforeAll(async () => {
    const work = tempDir("bulwark-app-run-")
    const built = await buildAppBundle(undefined, join(work, "app.js"))
    image = await makeImage({ version: "1.0.0", counter: 1, payload: readFileSync(built.path) })
    caDir = join(work, "ca")
    await createCa(caDir, "App test fleet")
    ca = await loadCa(caDir)
    await issueBrokerCertificate(ca, ["localhost"], join(caDir, "broker"))
    broker = await startBroker({ caDir, port: 0 })
    const creds = await operatorCredentials(ca, "auditor")
    operator = await transportFor(creds).connect(connectOptions(broker.port, ca, creds.id))
    await operator.subscribe("bulwark/+/audit/#", 1)
    await operator.subscribe("bulwark/+/attest/#", 1)
    void (async () => {
        for (;;) {
            const m = await operator.receive()
            if (m === null) return
            inbox.push({ topic: m.topic, payload: Buffer.from(m.payload) })
        }
    })()
})

afterAll(async () => {
    for (const d of running) await d.stop()
    await operator?.close()
    await broker?.close()
    cleanupTestBoards()
    removeTempDirs()
})

/** A provisioned device running the app under the runner, its console on DEV/console.sock. */
async function newDevice(): Promise<{ id: string; dir: string; device: DeviceHandle }> {
    const dir = join(tempDir("bulwark-app-dev-"), "dev")
    const board = await SimBoard.create(dir, { profile: PROFILE, trust: [keyA.anchor], counter: 1 })
    await board.debugFlash("slot-a", image)
    board.close()
    const { deviceId } = await provision({ devDir: dir, caDir, iterations: 1000 })
    const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port }, { console: true })
    running.push(device)
    await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
    return { id: deviceId, dir, device }
}

async function stopAndReadAudit(dir: string, device: DeviceHandle): Promise<AuditRecord[]> {
    await device.stop()
    running.splice(running.indexOf(device), 1)
    return auditRecords(dir)
}

async function until(what: string, check: () => boolean): Promise<void> {
    const deadline = Date.now() + 10000
    while (!check()) {
        if (Date.now() > deadline) throw new Error("timed out waiting for " + what)
        await new Promise((r) => setTimeout(r, 20))
    }
}

function messagesOf(id: string): MqttMessage[] {
    return inbox.filter((m) => m.topic.startsWith(`bulwark/${id}/audit/export`))
}

async function askForExport(id: string, request: Buffer): Promise<MqttMessage[]> {
    inbox.splice(0)
    await operator.publish(`bulwark/${id}/audit/export-request`, request, 1)
    await until("export result", () => messagesOf(id).some((m) => m.topic.endsWith("/export-result")))
    return messagesOf(id)
}

describe("the running device's audit log", () => {
    it("GP-TM-08: records its boot decision, each security override and the broker session at start-up", async () => {
        const { dir, device } = await newDevice()
        await new Promise((r) => setTimeout(r, 500)) // the main loop writes session events

        const records = await stopAndReadAudit(dir, device)

        const override = records.find((r) => r.event === "security-override")
        const boot = records.find((r) => r.event === "boot")
        expect(override).toMatchObject({ actor: "profile", detail: "override=console enabled=true" })
        expect(boot).toMatchObject({ actor: "boot-stub", outcome: "info" })
        expect(boot!.detail).toBe("slot=a version=1.0.0 counter=1 trial=false")
        expect(records.map((r) => r.event)).toContain("session-connected")
    })
})

describe("audit export over MQTT", () => {
    it("GP-TM-55: serves an operator-signed request on the device's topics; the export verifies offline", async () => {
        const { id, device, dir } = await newDevice()
        const request = signExportRequest(operatorKey, id, 0, 0).bytes

        const replies = await askForExport(id, request)

        const result = replies.find((m) => m.topic.endsWith("/export-result"))!
        const pieces = replies.filter((m) => /\/audit\/export\/\d+$/.test(m.topic))
        const count = JSON.parse(result.payload.toString()).pieces
        expect(JSON.parse(result.payload.toString())).toEqual({ ok: true, pieces: count })
        expect(pieces.length).toBe(count)
        pieces.sort((a, b) => Number(a.topic.split("/").pop()) - Number(b.topic.split("/").pop()))
        const records = await stopAndReadAudit(dir, device)
        const served = records.filter((r) => r.event === "log-export")
        expect(served).toHaveLength(1)
        expect(served[0].outcome).toBe("success")
        const pub = await devicePublicKey(dir)
        const report = await verify(pub, Buffer.concat(pieces.map((m) => m.payload)))
        expect(report.firstBad).toBeNull()
    })

    it("GP-TM-55: an unsigned, a stranger-signed and a tampered request are refused, audited, and change nothing", async () => {
        const { id, dir, device } = await newDevice()
        const good = signExportRequest(operatorKey, id, 0, 0).bytes
        const tampered = Buffer.from(good)
        tampered[tampered.length - 1] ^= 1
        const attempts = [
            good.subarray(0, good.length - 64),
            signExportRequest(strangerKey, id, 0, 0).bytes,
            tampered,
        ]

        const answers: string[] = []
        for (const request of attempts) {
            const replies = await askForExport(id, request)
            expect(replies.filter((m) => /\/audit\/export\/\d+$/.test(m.topic))).toHaveLength(0)
            answers.push(replies.find((m) => m.topic.endsWith("/export-result"))!.payload.toString())
        }

        expect(answers).toEqual(Array(3).fill('{"ok":false,"error":"refused"}'))
        const records = await stopAndReadAudit(dir, device)
        const exports = records.filter((r) => r.event === "log-export")
        expect(exports.map((r) => [r.outcome, r.detail])).toEqual([
            ["refused", "check=format"],
            ["refused", "check=operator"],
            ["refused", "check=signature"],
        ])
    })
})

describe("the admin console of a running device", () => {
    it("GP-TM-08: bulwark sim console reaches the running device on DEV/console.sock; a wrong setup code fails", async () => {
        const { dir, device } = await newDevice()
        const socket = await connectConsoleSocket(dir)
        expect(socket).not.toBeNull()
        let shown = ""
        socket!.on("data", (chunk) => (shown += chunk.toString()))

        await until("greeting", () => shown.includes("commands: login"))
        socket!.write("login\nowner\nNOT-THE-SETUP-CODE\n")
        await until("answer", () => shown.includes("login failed"))
        socket!.end()

        expect(shown).toMatch(/bulwark console /)
        const records = await stopAndReadAudit(dir, device)
        const logins = records.filter((r) => r.event === "login")
        expect(logins.map((r) => r.outcome)).toEqual(["failure"])
        expect(JSON.stringify(records)).not.toContain("NOT-THE-SETUP-CODE")
    })
})

async function devicePublicKey(dir: string): Promise<Buffer> {
    const board = await SimBoard.open(dir)
    try {
        return await board.secureElement.publicKey(0)
    } finally {
        board.close()
    }
}

/** SHA-256 over header and payload of the test image: what the boot stub measures. */
async function imageDigest(): Promise<Buffer> {
    const src = { size: image.length, read: async (o: number, n: number) => image.subarray(o, o + n) }
    const layout = await readImageLayout(src, true)
    return createHash("sha256").update(image.subarray(0, layout.trailerOffset)).digest()
}

async function askForReport(id: string, request: Buffer): Promise<Buffer> {
    inbox.splice(0)
    await operator.publish(`bulwark/${id}/attest/request`, request, 1)
    const topic = `bulwark/${id}/attest/report`
    await until("attestation report", () => inbox.some((m) => m.topic === topic))
    return inbox.find((m) => m.topic === topic)!.payload
}

describe("remote attestation through the broker", () => {
    it("GP-TM-56: the running device answers a signed request with a report of its measured boot; a replay gets refused", async () => {
        const { id, dir, device } = await newDevice()
        const request = signAttestRequest(operatorKey, id, 0)

        const report = await askForReport(id, request.bytes)
        const replayed = await askForReport(id, request.bytes)

        await device.stop()
        running.splice(running.indexOf(device), 1)
        const pub = await devicePublicKey(dir)
        const r = await verifyReportBytes(pub, report, {
            nonce: request.nonce, digest: await imageDigest(), minCounter: 1,
        })
        expect(r).toMatchObject({ deviceId: id, slot: "a", version: "1.0.0", trial: false })
        expect(replayed.toString()).toBe('{"ok":false,"error":"refused"}')
    })

    it("GP-TM-31: a device powered up with its enclosure open zeroizes its keys and stays off the network", async () => {
        const { dir, device } = await newDevice()
        await device.stop()
        running.splice(running.indexOf(device), 1)
        const off = await SimBoard.open(dir)
        off.tamper.trigger()
        off.close()

        const again = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
        running.push(again)
        await again.waitFor((d) => d.app()?.tampered === true, 20000, "tamper response")

        expect(again.app()).toMatchObject({ connected: false, deviceId: null })
        const records = await stopAndReadAudit(dir, again)
        expect(records.filter((r) => r.event === "tamper").map((r) => r.detail)).toEqual([
            "switch=open identity=present zeroize=done",
        ])
    })
})
