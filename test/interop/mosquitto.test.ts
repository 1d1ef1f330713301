/**
 * Interop: the same device session and policy against Mosquitto (Debian package) set up with
 * require_certificate, use_identity_as_username, the pattern ACL bulwark/%u/# and the fleet
 * CRL of `bulwark ca crl` (GP-TM-38, GP-TM-39, GP-TM-40, GP-TM-44, GP-TM-47, GP-TM-48), and
 * certificate renewal over MQTT (`bulwark ca renew-online`) with that ACL (GP-TM-35, GP-TM-48).
 * Skipped, by name, where Mosquitto is not installed.
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MqttSession } from "../../hal/mqtt"
import { SimBoard } from "../../sim/board"
import { findMosquitto, RunningMosquitto, startMosquitto } from "../../sim/mosquitto"
import { simMqttTransport } from "../../sim/mqtt"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { CommandEnvelope, decodeCommand } from "../../src/messages"
import { PARTITION_IDENTITY, readIdentity } from "../../src/identity"
import { DeviceSession } from "../../src/session"
import { DeviceHandle } from "../../sim/runner"
import { issueOperatorCertificate } from "../../tools/ca"
import { OperatorCredentials, readOperator } from "../../tools/operator-link"
import { provision, readRegistry, Registry, REGISTRY_FILE } from "../../tools/provision"
import {
    connectOptions,
    Credentials,
    deviceCredentials,
    Fleet,
    makeFleet,
    operatorCredentials,
    plaintextConnect,
    provisionedCredentials,
    removeTempDirs,
    tempDir,
    tlsConnectProbe,
    transportFor,
} from "../transport/fixtures"
import {
    bare,
    identityKeyPem,
    rawPublic,
    renewalApp,
    renewalDevice,
    runConnected,
    serialOf,
    stopDevice,
    storedIdentity,
} from "../transport/renewal-fixtures"
import { runCli } from "../helpers/cli"

const available = findMosquitto() !== null
const title = available
    ? "Mosquitto interop"
    : "Mosquitto interop (skipped: mosquitto is not installed; .ci/run installs it)"

describe.skipIf(!available)(title, () => {
    let fleet: Fleet
    let otherFleet: Fleet
    let mosquitto: RunningMosquitto
    let devA: Credentials
    let devB: Credentials
    let operator: Credentials
    let renewerDir: string
    let renewer: OperatorCredentials
    const running: DeviceHandle[] = []

    beforeAll(async () => {
        fleet = await makeFleet()
        otherFleet = await makeFleet("Attacker CA")
        operator = await operatorCredentials(fleet.ca, "ops")
        renewerDir = join(tempDir("bulwark-op-"), "renewer")
        await issueOperatorCertificate(fleet.ca, "renewer", renewerDir)
        renewer = readOperator(renewerDir)
        mosquitto = await startMosquitto({
            caDir: fleet.caDir,
            certDir: fleet.brokerDir,
            operators: [operator.id, "operator:" + renewer.name],
        })
        devA = await deviceCredentials(fleet.ca, "dev-a")
        devB = await deviceCredentials(fleet.ca, "dev-b")
    })

    afterAll(async () => {
        for (const d of running.splice(0)) await d.stop()
        await mosquitto?.close()
        cleanupTestBoards()
        removeTempDirs()
    })

    const connect = (c: Credentials): Promise<MqttSession> =>
        transportFor(c).connect(connectOptions(mosquitto.port, fleet.ca, c.id))

    it("GP-TM-39: a plaintext MQTT CONNECT to Mosquitto never gets a CONNACK", async () => {
        const reply = await plaintextConnect(mosquitto.port)

        expect(reply.length === 0 || reply[0] !== 0x20).toBe(true)
    })

    it("GP-TM-40: Mosquitto refuses a client with no certificate or another CA's", async () => {
        const forged = await deviceCredentials(otherFleet.ca, "dev-a")

        const none = await tlsConnectProbe(mosquitto.port, { ca: [fleet.ca.certPem] }, "dev-a")
        const other = await tlsConnectProbe(
            mosquitto.port,
            { ca: [fleet.ca.certPem], cert: forged.certPem, key: forged.keyPem },
            "dev-a"
        )

        expect(none).not.toBe("accepted")
        expect(other).not.toBe("accepted")
    })

    it("GP-TM-44: the device refuses Mosquitto under a name its certificate lacks", async () => {
        const options = connectOptions(mosquitto.port, fleet.ca, "dev-a")
        options.serverName = "broker.example"

        await expect(transportFor(devA).connect(options)).rejects.toMatchObject({ code: "tls" })
    })

    it("GP-TM-38: device A's publish to device B's topics never reaches B", async () => {
        const b = await connect(devB)
        await b.subscribe("bulwark/dev-b/#", 1)
        const a = await connect(devA)

        await a.publish("bulwark/dev-b/cmd/reboot", Buffer.from("{}"), 1).catch(() => undefined)
        await b.publish("bulwark/dev-b/marker", Buffer.from("m"), 1)

        expect((await b.receive())?.topic).toBe("bulwark/dev-b/marker")
        await a.close()
        await b.close()
    })

    it("GP-TM-47: device A subscribed to B's topics receives none of B's messages", async () => {
        const a = await connect(devA)
        await a.subscribe("bulwark/dev-b/#", 1).catch(() => undefined)
        await a.subscribe("bulwark/dev-a/#", 1)
        const b = await connect(devB)

        await b.publish("bulwark/dev-b/telemetry", Buffer.from("secret"), 1)
        await a.publish("bulwark/dev-a/marker", Buffer.from("m"), 1)

        expect((await a.receive())?.topic).toBe("bulwark/dev-a/marker")
        await a.close()
        await b.close()
    })

    it("GP-TM-48: with the CRL of `ca crl`, Mosquitto refuses a revoked device, not another",
        async () => {
            const lost = await provisionedCredentials(fleet.caDir, "dev-lost")
            const kept = await provisionedCredentials(fleet.caDir, "dev-kept")
            const crlFile = join(tempDir("bulwark-crl-"), "fleet.crl.pem")
            const revoke = ["ca", "revoke", "--ca", fleet.caDir, "--id", lost.id, "--json"]
            expect((await runCli(revoke)).code).toBe(0)
            expect((await runCli(["ca", "crl", "--ca", fleet.caDir, "--out", crlFile])).code)
                .toBe(0)
            const withCrl = await startMosquitto({
                caDir: fleet.caDir,
                certDir: fleet.brokerDir,
                crlFile,
            })
            const probe = (c: Credentials) =>
                tlsConnectProbe(withCrl.port, { ca: [fleet.ca.certPem], cert: c.certPem,
                    key: c.keyPem }, c.id)
            try {
                expect(await probe(kept)).toBe("accepted")
                // The TLS alert "certificate revoked" (OpenSSL's name for it in Node).
                expect(await probe(lost)).toBe("error:ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED")
            } finally {
                await withCrl.close()
            }
        })

    it("GP-TM-39: a provisioned sim board's session works with Mosquitto both ways", async () => {
        const fresh = await makeTestBoard()
        fresh.close()
        const devDir = fresh.dir
        const { deviceId } = await provision({ devDir, caDir: fleet.caDir, iterations: 1000 })
        const board = await SimBoard.open(fresh.dir, { mqtt: simMqttTransport })
        const partition = board.flash.partition(PARTITION_IDENTITY)
        const identity = (await readIdentity(board.crypto, board.secureElement, partition))!
        const commands: CommandEnvelope[] = []
        const session = new DeviceSession(board, {
            deviceId,
            caPem: identity.caPem,
            transport: { ...board.profile.transport, brokerPort: mosquitto.port },
            connectHost: "127.0.0.1",
        })
        session.route("cmd", (p) => decodeCommand(p, 1024), async (c) => {
            commands.push(c)
        })
        const ops = await connect(operator)
        await ops.subscribe(`bulwark/${deviceId}/telemetry`, 1)
        const running = session.run()
        for (let i = 0; i < 400 && !session.isConnected(); i++) {
            await board.advance(50)
            await new Promise((r) => setTimeout(r, 5))
        }

        await session.publish("telemetry", Buffer.from("21.5"), true)
        const telemetry = await ops.receive()
        const ping = Buffer.from('{"v":1,"id":"c1","name":"ping"}')
        await ops.publish(`bulwark/${deviceId}/cmd/ping`, ping, 1)
        for (let i = 0; i < 400 && commands.length === 0; i++)
            await new Promise((r) => setTimeout(r, 5))

        expect(telemetry?.payload.toString()).toBe("21.5")
        expect(commands).toEqual([{ id: "c1", name: "ping", args: {} }])
        await ops.close()
        await session.stop()
        await running
        board.close()
    })

    describe("certificate renewal over MQTT (bulwark ca renew-online)", () => {
        let app: Buffer

        beforeAll(async () => {
            app = await renewalApp(tempDir("bulwark-renew-mq-"))
        })

        const newDevice = () => renewalDevice(fleet, app, [rawPublic(renewer.keyPem)], 10)

        const renewCli = (port: number, id: string) =>
            runCli(["ca", "renew-online", "--broker", "127.0.0.1:" + port, "--ca", fleet.caDir,
                "--operator", renewerDir, "--devices", id, "--timeout", "30", "--json"])

        const entryOf = (id: string) => readRegistry(fleet.caDir).devices.find((d) => d.id === id)!

        /** How many times Mosquitto logged `id` connecting, once it is `want` (or after 5 s). */
        async function connectionsOf(id: string, want: number): Promise<number> {
            const count = () => mosquitto.log().split("\n")
                .filter((l) => l.includes("New client connected") && l.includes(` as ${id} `))
                .length
            for (let i = 0; i < 100 && count() < want; i++)
                await new Promise((r) => setTimeout(r, 50))
            return count()
        }

        function editRegistry(change: (r: Registry) => void): void {
            const registry = readRegistry(fleet.caDir)
            change(registry)
            writeFileSync(join(fleet.caDir, REGISTRY_FILE), JSON.stringify(registry, null, 2))
        }

        it("GP-TM-35: through Mosquitto, a device renews its certificate over MQTT and reconnects with it",
            async () => {
                const { dir, id, serial } = await newDevice()
                const before = (await storedIdentity(dir))!
                const device = await runConnected(dir, mosquitto.port, running)

                const res = await renewCli(mosquitto.port, id)
                await device.waitFor((d) => d.app()?.connected === true, 20000, "reconnected")
                // Mosquitto saw the device connect twice: at power-up and with the new certificate.
                const sessions = await connectionsOf(id, 2)
                const entry = entryOf(id)
                const after = (await storedIdentity(dir))!
                await stopDevice(device, running)
                // A later power-up dials Mosquitto with the identity record's certificate.
                const again = await runConnected(dir, mosquitto.port, running)
                await stopDevice(again, running)

                expect(res.code, mosquitto.log()).toBe(0)
                expect(sessions).toBe(2)
                expect(res.json).toMatchObject({ ok: true,
                    devices: [{ deviceId: id, ok: true, state: "renewed", step: "certificate" }] })
                expect(entry.certSerial).toBe(res.json.devices[0].certSerial)
                expect(entry.previousSerials).toEqual([serial])
                expect(serialOf(before.certificatePem)).toBe(bare(serial))
                expect(after.certificatePem).not.toBe(before.certificatePem)
                expect(serialOf(after.certificatePem)).toBe(bare(entry.certSerial))
                expect(after.previousCertificatePem).toBeUndefined()
            })

        it("GP-TM-48: after renewal and revocation of the old serial in the CRL, Mosquitto accepts the renewed device and refuses the old certificate",
            async () => {
                const { dir, id, serial } = await newDevice()
                const oldPem = (await storedIdentity(dir))!.certificatePem
                const device = await runConnected(dir, mosquitto.port, running)
                const res = await renewCli(mosquitto.port, id)
                await device.waitFor((d) => d.app()?.connected === true, 20000, "reconnected")
                await stopDevice(device, running)
                expect(res.code, mosquitto.log()).toBe(0)
                const newPem = (await storedIdentity(dir))!.certificatePem
                const keyPem = await identityKeyPem(dir)
                // Only the superseded certificate is revoked; the device itself is not.
                editRegistry((r) => r.revokedSerials.push(serial))
                const crlFile = join(tempDir("bulwark-crl-"), "fleet.crl.pem")
                expect((await runCli(["ca", "crl", "--ca", fleet.caDir, "--out", crlFile])).code)
                    .toBe(0)
                const withCrl = await startMosquitto({
                    caDir: fleet.caDir,
                    certDir: fleet.brokerDir,
                    operators: ["operator:" + renewer.name],
                    crlFile,
                })
                const probe = (certPem: string) => tlsConnectProbe(withCrl.port,
                    { ca: [fleet.ca.certPem], cert: certPem, key: keyPem }, id)
                try {
                    const renewed = await runConnected(dir, withCrl.port, running)
                    await stopDevice(renewed, running)

                    expect(await probe(newPem)).toBe("accepted")
                    expect(await probe(oldPem)).toBe("error:ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED")
                    expect(serialOf(newPem)).toBe(bare(entryOf(id).certSerial))
                } finally {
                    await withCrl.close()
                }
            })
    })
})
