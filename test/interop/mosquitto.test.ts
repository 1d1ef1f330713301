/**
 * Interop: the same device session and policy against Mosquitto (Debian package) set up with
 * require_certificate, use_identity_as_username, the pattern ACL bulwark/%u/# and the fleet
 * CRL of `bulwark ca crl` (GP-TM-38, GP-TM-39, GP-TM-40, GP-TM-44, GP-TM-47, GP-TM-48).
 * Skipped, by name, where Mosquitto is not installed.
 */

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
import { provision } from "../../tools/provision"
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

    beforeAll(async () => {
        fleet = await makeFleet()
        otherFleet = await makeFleet("Attacker CA")
        operator = await operatorCredentials(fleet.ca, "ops")
        mosquitto = await startMosquitto({
            caDir: fleet.caDir,
            certDir: fleet.brokerDir,
            operators: [operator.id],
        })
        devA = await deviceCredentials(fleet.ca, "dev-a")
        devB = await deviceCredentials(fleet.ca, "dev-b")
    })

    afterAll(async () => {
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
})
