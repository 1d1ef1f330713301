/**
 * Certificate renewal over the network, end to end: provisioned sim devices run by the sim
 * runner (boot stub, app bundle, mutual TLS) on the embedded broker, and `bulwark ca
 * renew-online` as the operator. A device near expiry gets a new certificate for its own key,
 * reconnects with it (its old serial can then be revoked) and the registry records it; a
 * certificate the broker refuses is rolled back; a forged renewal is refused and audited; the
 * command exits 0, 1 or 2. GP-TM-21, GP-TM-35, GP-TM-49, GP-TM-55.
 */

import { generateKeyPairSync, X509Certificate } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { KIND_CERTIFICATE } from "../../src/renewal"
import { RunningBroker, startBroker } from "../../sim/broker"
import { DeviceHandle } from "../../sim/runner"
import { cleanupTestBoards } from "../../sim/testing"
import { issueDeviceCertificate, issueOperatorCertificate } from "../../tools/ca"
import { connectOperator, OperatorCredentials, readOperator } from "../../tools/operator-link"
import { readRegistry, Registry, REGISTRY_FILE } from "../../tools/provision"
import { signRenewal } from "../../tools/renew-online"
import { auditRecords } from "../app/harness"
import { runCli } from "../helpers/cli"
import { Fleet, makeFleet, removeTempDirs, tempDir } from "./fixtures"
import {
    bare,
    identityBytes,
    onBoard,
    rawPublic,
    renewalApp,
    renewalDevice,
    runConnected,
    serialOf,
    stopDevice,
    storedIdentity,
} from "./renewal-fixtures"

let work: string
let fleet: Fleet
let broker: RunningBroker
let app: Buffer
let operatorDir: string
let operator: OperatorCredentials
let observer: OperatorCredentials
const running: DeviceHandle[] = []

beforeAll(async () => {
    work = tempDir("bulwark-renew-e2e-")
    app = await renewalApp(work)
    fleet = await makeFleet("Renewal e2e fleet")
    operatorDir = join(work, "operator")
    await issueOperatorCertificate(fleet.ca, "renewer", operatorDir)
    operator = readOperator(operatorDir)
    await issueOperatorCertificate(fleet.ca, "observer", join(work, "observer"))
    observer = readOperator(join(work, "observer"))
    broker = await startBroker({ caDir: fleet.caDir, port: 0 })
})

afterAll(async () => {
    for (const d of running) await d.stop()
    await broker?.close()
    cleanupTestBoards()
    removeTempDirs()
})

/** A provisioned device with v1 and a certificate that ends in `days` days. */
function newDevice(days = 10, keys = [rawPublic(operator.keyPem)]) {
    return renewalDevice(fleet, app, keys, days)
}

function run(dir: string): Promise<DeviceHandle> {
    return runConnected(dir, broker.port, running)
}

function stop(device: DeviceHandle): Promise<void> {
    return stopDevice(device, running)
}

function editRegistry(change: (r: Registry) => void): void {
    const registry = readRegistry(fleet.caDir)
    change(registry)
    writeFileSync(join(fleet.caDir, REGISTRY_FILE), JSON.stringify(registry, null, 2))
}

/** Publishes one cert/renew message as the operator and returns the device's next status. */
async function sendRenewal(id: string, message: Buffer): Promise<string> {
    const link = { broker: { host: "127.0.0.1", port: broker.port }, serverName: "localhost",
        caPem: fleet.ca.certPem }
    const watcher = await connectOperator({ ...link, operator: observer })
    await watcher.subscribe(`bulwark/${id}/cert/status`, 1)
    const session = await connectOperator({ ...link, operator })
    await session.publish(`bulwark/${id}/cert/renew`, message, 1)
    await session.close()
    const status = await Promise.race([
        watcher.receive(),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 20000)),
    ])
    await watcher.close()
    return status === null ? "none" : status.payload.toString()
}

async function renewCli(extra: string[]) {
    return runCli(["ca", "renew-online", "--broker", "127.0.0.1:" + broker.port, "--ca",
        fleet.caDir, "--operator", operatorDir, "--timeout", "30", "--json", ...extra])
}

describe("bulwark ca renew-online", () => {
    it("GP-TM-35: a device near expiry gets a new certificate over MQTT, reconnects with it, and the registry records the serial",
        async () => {
            const { dir, id, serial } = await newDevice(10)
            const device = await run(dir)

            const res = await renewCli([])
            await device.waitFor((d) => d.app()?.connected === true, 20000, "reconnected")
            const entry = readRegistry(fleet.caDir).devices.find((d) => d.id === id)!
            editRegistry((r) => r.revokedSerials.push(serial))
            await stop(device)
            const again = await run(dir)
            await stop(again)
            const identity = (await storedIdentity(dir))!
            const audit = (await auditRecords(dir)).filter((r) => r.event === "cert-renewal")

            expect(res.code).toBe(0)
            expect(res.json).toMatchObject({ ok: true,
                devices: [{ deviceId: id, ok: true, state: "renewed", step: "certificate" }] })
            expect(entry.certSerial).toBe(res.json.devices[0].certSerial)
            expect(entry.previousSerials).toEqual([serial])
            expect(Date.parse(entry.notAfter) - Date.now()).toBeGreaterThan(80 * 86400_000)
            expect(serialOf(identity.certificatePem)).toBe(bare(entry.certSerial))
            expect(identity.previousCertificatePem).toBeUndefined()
            expect(audit.map((r) => r.detail.replace(/ serial=.*/, ""))).toEqual([
                "step=key-request", "step=installed", "step=confirmed"])
        })

    it("GP-TM-35: a renewed certificate the broker refuses is rolled back; the device reconnects with its previous one",
        async () => {
            const { dir, id, serial } = await newDevice(10)
            const before = (await storedIdentity(dir))!
            const publicKey = await onBoard(dir, (b) => b.secureElement.publicKey(SE_SLOT_IDENTITY))
            const issued = await issueDeviceCertificate(fleet.ca, id, publicKey)
            editRegistry((r) => r.revokedSerials.push(issued.serial))
            const device = await run(dir)
            const der = Buffer.from(new X509Certificate(issued.certPem).raw)

            const status = await sendRenewal(id, signRenewal(operator.keyPem, KIND_CERTIFICATE, id,
                0, der))
            await device.waitFor((d) => d.app()?.connected === true, 20000, "reconnected")
            await stop(device)
            const after = (await storedIdentity(dir))!
            const audit = (await auditRecords(dir)).filter((r) => r.event === "cert-renewal")

            expect(status).toBe('{"ok":false,"error":"refused"}')
            expect(after).toEqual(before)
            expect(serialOf(after.certificatePem)).toBe(bare(serial))
            expect(audit.map((r) => r.outcome + " " + r.detail.replace(/ serial=.*/, ""))).toEqual([
                "success step=installed", "failure step=reverted"])
        })

    it("GP-TM-21: a renewal through the broker signed by an unknown operator key is refused, audited, and the identity is byte for byte unchanged",
        async () => {
            const { dir, id } = await newDevice(10)
            const bytes = await identityBytes(dir)
            const publicKey = await onBoard(dir, (b) => b.secureElement.publicKey(SE_SLOT_IDENTITY))
            const issued = await issueDeviceCertificate(fleet.ca, id, publicKey)
            const der = Buffer.from(new X509Certificate(issued.certPem).raw)
            const stranger = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey
                .export({ format: "pem", type: "pkcs8" }) as string
            const device = await run(dir)

            const status = await sendRenewal(id, signRenewal(stranger, KIND_CERTIFICATE, id, 0, der))
            // The record waits for the main loop (a tick is 100 ms) before it is written.
            await new Promise((resolve) => setTimeout(resolve, 500))
            await stop(device)
            const audit = (await auditRecords(dir)).filter((r) => r.event === "cert-renewal")

            expect(status).toBe('{"ok":false,"error":"refused"}')
            expect((await identityBytes(dir)).equals(bytes)).toBe(true)
            expect(audit.map((r) => r.outcome + " " + r.detail)).toEqual(["refused check=operator"])
        })

    it("GP-TM-35: exits 1 when a device refuses or does not answer, 2 for bad usage", async () => {
        const refusing = await newDevice(10, [])
        const silent = await newDevice(10)
        const device = await run(refusing.dir)

        const refused = await renewCli(["--devices", refusing.id])
        const timedOut = await renewCli(["--devices", silent.id, "--timeout", "2"])
        await stop(device)
        const unknown = await renewCli(["--devices", "dev-nobody"])
        const badDays = await renewCli(["--devices", silent.id, "--within-days", "x"])
        const noBroker = await runCli(["ca", "renew-online", "--ca", fleet.caDir, "--operator",
            operatorDir])
        const registry = readRegistry(fleet.caDir)

        expect(refused.code).toBe(1)
        expect(refused.json.devices[0]).toMatchObject({ ok: false, state: "refused", step: "key",
            check: "reply" })
        expect(timedOut.code).toBe(1)
        expect(timedOut.json.devices[0]).toMatchObject({ ok: false, state: "timeout", step: "key" })
        expect([unknown.code, badDays.code, noBroker.code]).toEqual([2, 2, 2])
        expect(registry.devices.find((d) => d.id === silent.id)!.certSerial).toBe(silent.serial)
    })
})
