/**
 * The embedded broker and the sim TLS transport under attack: no plaintext, no client
 * without a valid fleet certificate, no device outside its own topics, and a device that
 * refuses a broker it cannot authenticate (GP-TM-39, 40, 21, 37, 38, 43, 44, 47, 48).
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TransportError } from "../../hal/errors"
import { BrokerEvent, RunningBroker, startBroker } from "../../sim/broker"
import { TLS_CIPHERS } from "../../sim/mqtt"
import {
    connectOptions,
    Credentials,
    deviceCredentials,
    Fleet,
    makeFleet,
    operatorCredentials,
    plaintextConnect,
    removeTempDirs,
    tlsConnectProbe,
    transportFor,
} from "./fixtures"

let fleet: Fleet
let otherFleet: Fleet
let broker: RunningBroker
const events: BrokerEvent[] = []
let devA: Credentials
let devB: Credentials

beforeAll(async () => {
    fleet = await makeFleet()
    otherFleet = await makeFleet("Attacker CA")
    broker = await startBroker({ caDir: fleet.caDir, port: 0, onEvent: (e) => events.push(e) })
    devA = await deviceCredentials(fleet.ca, "dev-a")
    devB = await deviceCredentials(fleet.ca, "dev-b")
})

afterAll(async () => {
    await broker.close()
    removeTempDirs()
})

function probeWith(c: Credentials, extra: object = {}): Promise<string> {
    const options = { ca: [fleet.ca.certPem], cert: c.certPem, key: c.keyPem, ...extra }
    return tlsConnectProbe(broker.port, options, c.id)
}

/** The reason of the broker's latest TLS-level refusal. */
function lastRefusal(): string {
    const refused = events.filter((e) => e.event === "refused" && e.peer === undefined)
    return refused.length > 0 ? refused[refused.length - 1].reason ?? "" : ""
}

async function expectTransportError(p: Promise<unknown>, codes: string[]): Promise<TransportError> {
    const err = await p.then(
        () => null,
        (e) => e
    )
    expect(err).toBeInstanceOf(TransportError)
    expect(codes).toContain((err as TransportError).code)
    return err as TransportError
}

describe("TLS only (GP-TM-39, GP-TM-40)", () => {
    it("GP-TM-39: a plaintext MQTT CONNECT to the broker port never gets a CONNACK", async () => {
        const reply = await plaintextConnect(broker.port)

        expect(reply.length === 0 || reply[0] !== 0x20).toBe(true)
    })

    it("GP-TM-39: a device with a fleet certificate connects over TLS 1.3", async () => {
        const options = connectOptions(broker.port, fleet.ca, "dev-a")
        const session = await transportFor(devA).connect(options)

        expect(session.isOpen()).toBe(true)
        await session.close()
        expect(await probeWith(devA, { maxVersion: "TLSv1.3" })).toBe("accepted")
    })

    it("GP-TM-34: TLS 1.1 and non-AEAD or non-ECDHE cipher suites are refused", async () => {
        const tls12 = { maxVersion: "TLSv1.2" as const }
        const legacy = { minVersion: "TLSv1" as const, maxVersion: "TLSv1.1" as const }

        const old = await probeWith(devA, { ...legacy, ciphers: "DEFAULT@SECLEVEL=0" })
        const cbc = await probeWith(devA, { ...tls12, ciphers: "ECDHE-ECDSA-AES128-SHA256" })
        const staticRsa = await probeWith(devA, { ...tls12, ciphers: "AES128-GCM-SHA256" })

        expect(old).toMatch(/^error:/)
        expect(cbc).toMatch(/^error:/)
        expect(staticRsa).toMatch(/^error:/)
    })

    it("GP-TM-39: TLS 1.2 with an ECDHE AEAD suite is accepted", async () => {
        const verdict = await probeWith(devA, { maxVersion: "TLSv1.2", ciphers: TLS_CIPHERS })

        expect(verdict).toBe("accepted")
    })

    it("GP-TM-40: a client without a certificate is refused before MQTT", async () => {
        const verdict = await tlsConnectProbe(broker.port, { ca: [fleet.ca.certPem] }, "dev-a")

        expect(verdict).not.toBe("accepted")
        expect(verdict).not.toMatch(/^connack/)
    })

    it("GP-TM-40: a client certificate from another CA is refused", async () => {
        const forged = await deviceCredentials(otherFleet.ca, "dev-a")

        const verdict = await probeWith(forged)

        expect(verdict).not.toBe("accepted")
        expect(lastRefusal()).toMatch(/certificate|verify/i)
        await expectTransportError(
            transportFor(forged).connect(connectOptions(broker.port, fleet.ca, "dev-a")),
            ["auth", "closed"]
        )
    })

    it("GP-TM-40: an expired device certificate is refused", async () => {
        const day = 24 * 3600 * 1000
        const expired = await deviceCredentials(fleet.ca, "dev-old", {
            notBefore: new Date(Date.now() - 100 * day),
            notAfter: new Date(Date.now() - day),
        })

        expect(await probeWith(expired)).not.toBe("accepted")
        expect(lastRefusal()).toMatch(/expired/i)
    })

    it("GP-TM-42/44: the device refuses a broker certificate from another CA", async () => {
        const certDir = otherFleet.brokerDir
        const fake = await startBroker({ caDir: fleet.caDir, certDir, port: 0 })
        try {
            const err = await expectTransportError(
                transportFor(devA).connect(connectOptions(fake.port, fleet.ca, "dev-a")),
                ["tls"]
            )
            expect(err.message).not.toMatch(/PRIVATE KEY/)
        } finally {
            await fake.close()
        }
    })

    it("GP-TM-44: the sim transport will not connect without a fleet CA to pin", async () => {
        const options = connectOptions(broker.port, fleet.ca, "dev-a")
        options.caPem = ""

        await expectTransportError(transportFor(devA).connect(options), ["tls"])
    })

    it("GP-TM-44: the device refuses a broker certificate for another host name", async () => {
        const options = connectOptions(broker.port, fleet.ca, "dev-a")
        options.serverName = "broker.example"

        await expectTransportError(transportFor(devA).connect(options), ["tls"])
    })
})

describe("per-device authorisation (GP-TM-21, 37, 38, 43, 47, 48)", () => {
    it("GP-TM-21: a device cannot connect under another device's client id", async () => {
        const options = connectOptions(broker.port, fleet.ca, "dev-b")

        await expectTransportError(transportFor(devA).connect(options), ["auth"])
        expect(events.some((e) => e.event === "refused" && e.reason === "client id")).toBe(true)
    })

    it("GP-TM-27/47: device A cannot subscribe to device B's topics", async () => {
        const a = await transportFor(devA).connect(connectOptions(broker.port, fleet.ca, "dev-a"))

        await expectTransportError(a.subscribe("bulwark/dev-b/#", 1), ["refused"])
        await expectTransportError(a.subscribe("bulwark/+/cmd/#", 1), ["refused"])
        await expectTransportError(a.subscribe("#", 1), ["refused"])
        await a.subscribe("bulwark/dev-a/#", 1)
        await a.close()
    })

    it("GP-TM-29/38: device A cannot publish to device B's topics; B never sees it", async () => {
        const b = await transportFor(devB).connect(connectOptions(broker.port, fleet.ca, "dev-b"))
        await b.subscribe("bulwark/dev-b/#", 1)
        const a = await transportFor(devA).connect(connectOptions(broker.port, fleet.ca, "dev-a"))

        const attack = a.publish("bulwark/dev-b/cmd/reboot", Buffer.from("{}"), 1)
        await expectTransportError(attack, ["closed"])
        await b.publish("bulwark/dev-b/marker", Buffer.from("m"), 1)

        const first = await b.receive()
        expect(first?.topic).toBe("bulwark/dev-b/marker")
        expect(events.some((e) => e.event === "denied-publish" && e.peer === "dev-a")).toBe(true)
        await b.close()
    })

    it("GP-TM-48: an operator certificate may address every device", async () => {
        const op = await operatorCredentials(fleet.ca, "alice")
        const b = await transportFor(devB).connect(connectOptions(broker.port, fleet.ca, "dev-b"))
        await b.subscribe("bulwark/dev-b/cmd/#", 1)
        const o = await transportFor(op).connect(connectOptions(broker.port, fleet.ca, op.id))
        await o.subscribe("bulwark/+/telemetry", 1)

        await o.publish("bulwark/dev-b/cmd/ping", Buffer.from("{}"), 1)
        await b.publish("bulwark/dev-b/telemetry", Buffer.from("t"), 1)

        expect((await b.receive())?.topic).toBe("bulwark/dev-b/cmd/ping")
        expect((await o.receive())?.topic).toBe("bulwark/dev-b/telemetry")
        await o.close()
        await b.close()
    })

    it("GP-TM-48: a revoked device is refused while others keep working", async () => {
        const victim = await deviceCredentials(fleet.ca, "dev-stolen")
        const registry = {
            format: "bulwark-fleet-registry",
            version: 1,
            devices: [],
            operators: [],
            revokedSerials: [victim.serial],
        }
        writeFileSync(join(fleet.caDir, "registry.json"), JSON.stringify(registry))

        await expectTransportError(
            transportFor(victim).connect(connectOptions(broker.port, fleet.ca, victim.id)),
            ["auth"]
        )
        const a = await transportFor(devA).connect(connectOptions(broker.port, fleet.ca, "dev-a"))
        expect(a.isOpen()).toBe(true)
        await a.close()
    })
})
