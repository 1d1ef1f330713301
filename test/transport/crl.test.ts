/**
 * Revocation beyond one device: `bulwark ca revoke-operator` on the embedded broker, re-issue
 * of a revoked operator name, and the fleet CRL of `bulwark ca crl`, signed by the CA key,
 * numbered, current and enforced by OpenSSL, the TLS library Mosquitto uses; bad input
 * changes nothing (GP-TM-21, GP-TM-39, GP-TM-40, GP-TM-48).
 */

import "reflect-metadata"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as tls from "node:tls"
import * as x509 from "@peculiar/x509"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { RunningBroker, startBroker } from "../../sim/broker"
import { cleanupTestBoards } from "../../sim/testing"
import { crlNumberOf } from "../../tools/crl"
import { readRegistry, renew } from "../../tools/provision"
import { CliResult, runCli } from "../helpers/cli"
import {
    boardCredentials,
    connectOptions,
    credentialsIn,
    Credentials,
    deviceCredentials,
    Fleet,
    makeFleet,
    provisionedCredentials,
    removeTempDirs,
    tempDir,
    tlsConnectProbe,
    transportFor,
} from "./fixtures"

const DAY_MS = 24 * 3600 * 1000

let fleet: Fleet
let otherFleet: Fleet
let broker: RunningBroker
let lost: Credentials
let kept: Credentials

beforeAll(async () => {
    fleet = await makeFleet()
    otherFleet = await makeFleet("Attacker CA")
    broker = await startBroker({ caDir: fleet.caDir, port: 0 })
    lost = await provisionedCredentials(fleet.caDir, "dev-lost")
    kept = await provisionedCredentials(fleet.caDir, "dev-kept")
})

afterAll(async () => {
    await broker?.close()
    cleanupTestBoards()
    removeTempDirs()
})

function cli(...argv: string[]): Promise<CliResult> {
    return runCli([...argv, "--json"])
}

/** `ca issue-operator` into a fresh directory; the credentials it wrote. */
async function issueOperator(name: string): Promise<Credentials> {
    const dir = join(tempDir("bulwark-op-"), name)
    const issued = await cli("ca", "issue-operator", "--ca", fleet.caDir, "--name", name,
        "--out", dir)
    expect(issued.code).toBe(0)
    return credentialsIn(dir, "operator:" + name)
}

function probe(c: Credentials): Promise<string> {
    const options = { ca: [fleet.ca.certPem], cert: c.certPem, key: c.keyPem }
    return tlsConnectProbe(broker.port, options, c.id)
}

function registryBytes(caDir = fleet.caDir): Buffer {
    return readFileSync(join(caDir, "registry.json"))
}

function parseCrl(path: string): x509.X509Crl {
    return new x509.X509Crl(readFileSync(path, "utf8"))
}

/**
 * A TLS server of Node's OpenSSL that requires a fleet client certificate and checks it
 * against `crlPem`: "accepted" when the handshake with `c` completes and the server answers,
 * otherwise how it failed.
 */
async function opensslVerdict(crlPem: string, c: Credentials): Promise<string> {
    const server = tls.createServer({
        key: readFileSync(join(fleet.brokerDir, "key.pem")),
        cert: readFileSync(join(fleet.brokerDir, "cert.pem")),
        ca: [fleet.ca.certPem],
        crl: crlPem,
        requestCert: true,
        rejectUnauthorized: true,
    }, (socket) => socket.end("accepted"))
    server.on("tlsClientError", () => undefined)
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const port = (server.address() as { port: number }).port
    try {
        return await new Promise<string>((resolve) => {
            let answer = ""
            const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost",
                ca: [fleet.ca.certPem], cert: c.certPem, key: c.keyPem })
            socket.on("data", (d: Buffer) => (answer += d.toString()))
            socket.on("error", (e: NodeJS.ErrnoException) => resolve("error:" + (e.code ?? "")))
            socket.on("close", () => resolve(answer === "accepted" ? answer : "closed"))
        })
    } finally {
        await new Promise((r) => server.close(r))
    }
}

describe("operator revocation (GP-TM-21, GP-TM-48)", () => {
    it("GP-TM-48: an operator revoked with `ca revoke-operator` is refused, another still works",
        async () => {
            const alice = await issueOperator("alice")
            const bob = await issueOperator("bob")
            expect(await probe(alice)).toBe("accepted")

            const revoked = await cli("ca", "revoke-operator", "--ca", fleet.caDir,
                "--name", "alice")

            expect(revoked.code).toBe(0)
            expect(revoked.json).toEqual({ ok: true, name: "alice", subject: "operator:alice",
                serials: [alice.serial] })
            expect(await probe(alice)).toBe("connack-5")
            await expect(
                transportFor(alice).connect(connectOptions(broker.port, fleet.ca, alice.id))
            ).rejects.toMatchObject({ code: "auth" })
            expect(await probe(bob)).toBe("accepted")
        })

    it("GP-TM-21: re-issuing a revoked operator name works with a new key; the old stays refused",
        async () => {
            const old = await issueOperator("carol")
            expect((await cli("ca", "revoke-operator", "--ca", fleet.caDir, "--name", "carol"))
                .code).toBe(0)

            const fresh = await issueOperator("carol")

            expect(fresh.serial).not.toBe(old.serial)
            expect(fresh.keyPem).not.toBe(old.keyPem)
            expect(await probe(fresh)).toBe("accepted")
            expect(await probe(old)).toBe("connack-5")
            const registry = readRegistry(fleet.caDir)
            const entry = registry.operators.find((o) => o.name === "carol")
            expect(entry).toMatchObject({ certSerial: fresh.serial, revoked: false,
                previousSerials: [old.serial] })
            expect(registry.revokedSerials).toContain(old.serial)
            expect(registry.revokedSerials).not.toContain(fresh.serial)
        })

    it("GP-TM-21: a name that is registered and not revoked is not issued twice", async () => {
        await issueOperator("dora")
        const before = registryBytes()

        const again = await cli("ca", "issue-operator", "--ca", fleet.caDir, "--name", "dora",
            "--out", join(tempDir("bulwark-op-"), "dora"))

        expect(again.code).toBe(2)
        expect(again.json.error).toMatch(/already registered/)
        expect(registryBytes()).toEqual(before)
    })
})

describe("retiring the certificates a renewal replaced (GP-TM-48)", () => {
    it("GP-TM-48: ca revoke --superseded refuses a device's replaced certificates and keeps its current one",
        async () => {
            const device = await provisionedCredentials(fleet.caDir, "dev-renewed")
            await renew(device.dir, fleet.caDir)
            const renewed = await boardCredentials(device.dir)
            expect(await probe(device)).toBe("accepted")

            const retired = await cli("ca", "revoke", "--ca", fleet.caDir, "--id", device.id,
                "--superseded")

            expect(retired.code).toBe(0)
            expect(retired.json).toMatchObject({ ok: true, deviceId: device.id,
                serials: [device.serial] })
            expect(await probe(device)).toBe("connack-5")
            expect(await probe(renewed)).toBe("accepted")
            const entry = readRegistry(fleet.caDir).devices.find((d) => d.id === device.id)!
            expect(entry.revoked).toBe(false)
            expect(readRegistry(fleet.caDir).revokedSerials).not.toContain(renewed.serial)
        })

    it("bad usage: --superseded for an unknown device exits 2, the registry byte for byte", async () => {
        const before = registryBytes()

        const unknown = await cli("ca", "revoke", "--ca", fleet.caDir, "--id", "dev-none",
            "--superseded")

        expect(unknown.code).toBe(2)
        expect(registryBytes()).toEqual(before)
    })
})

describe("serial matching on the embedded broker (GP-TM-48)", () => {
    it("GP-TM-48: a revoked serial is matched whatever its case or leading zeros", async () => {
        const own = await makeFleet()
        const victim = await deviceCredentials(own.ca, "dev-stolen")
        const other = await deviceCredentials(own.ca, "dev-other")
        const registry = { format: "bulwark-fleet-registry", version: 1, devices: [],
            operators: [], revokedSerials: ["00" + victim.serial.toUpperCase()] }
        writeFileSync(join(own.caDir, "registry.json"), JSON.stringify(registry))
        const ownBroker = await startBroker({ caDir: own.caDir, port: 0 })
        const probeOwn = (c: Credentials) => tlsConnectProbe(ownBroker.port,
            { ca: [own.ca.certPem], cert: c.certPem, key: c.keyPem }, c.id)
        try {
            expect(await probeOwn(victim)).toBe("connack-5")
            expect(await probeOwn(other)).toBe("accepted")
        } finally {
            await ownBroker.close()
        }
    })
})

describe("the fleet CRL (GP-TM-21, GP-TM-39, GP-TM-40)", () => {
    it("GP-TM-21: ca crl signs a CRL listing every revoked serial, verifiable with the CA key",
        async () => {
            const erin = await issueOperator("erin")
            expect((await cli("ca", "revoke", "--ca", fleet.caDir, "--id", lost.id)).code).toBe(0)
            expect((await cli("ca", "revoke-operator", "--ca", fleet.caDir, "--name", "erin"))
                .code).toBe(0)
            const dir = tempDir("bulwark-crl-")

            const first = await cli("ca", "crl", "--ca", fleet.caDir, "--out",
                join(dir, "1.pem"), "--days", "7")
            const second = await cli("ca", "crl", "--ca", fleet.caDir, "--out",
                join(dir, "2.pem"))

            expect(first.code).toBe(0)
            expect(second.code).toBe(0)
            const crl = parseCrl(join(dir, "1.pem"))
            const caCert = new x509.X509Certificate(fleet.ca.certPem)
            const otherCa = new x509.X509Certificate(otherFleet.ca.certPem)
            expect(await crl.verify({ publicKey: caCert })).toBe(true)
            expect(await crl.verify({ publicKey: otherCa })).toBe(false)
            expect(crl.issuer).toBe(caCert.subject)
            const registry = readRegistry(fleet.caDir)
            const listed = crl.entries.map((e) => e.serialNumber).sort()
            expect(listed).toEqual(registry.revokedSerials.map((s) => s.toLowerCase()).sort())
            expect(listed).toContain(lost.serial)
            expect(listed).toContain(erin.serial)
            expect(listed).not.toContain(kept.serial)
            expect(first.json.revoked).toBe(listed.length)
            const span = crl.nextUpdate!.getTime() - crl.thisUpdate.getTime()
            expect(Math.abs(span - 7 * DAY_MS)).toBeLessThanOrEqual(10 * 60 * 1000)
            expect(crl.thisUpdate.getTime()).toBeLessThanOrEqual(Date.now())
            expect(crl.nextUpdate!.toISOString()).toBe(first.json.nextUpdate)
            expect(crlNumberOf(crl)).toBe(first.json.crlNumber)
            expect(second.json.crlNumber).toBe(first.json.crlNumber + 1)
            expect(crlNumberOf(parseCrl(join(dir, "2.pem")))).toBe(second.json.crlNumber)
            expect(registry.crlNumber).toBe(second.json.crlNumber)
            const dates = (c: x509.X509Crl) => c.entries.map((e) => e.revocationDate.getTime())
            expect(dates(parseCrl(join(dir, "2.pem")))).toEqual(dates(crl))
        })

    it("GP-TM-40: OpenSSL loads the CRL and refuses the revoked device, accepting another",
        async () => {
            expect((await cli("ca", "revoke", "--ca", fleet.caDir, "--id", lost.id)).code).toBe(0)
            const out = join(tempDir("bulwark-crl-"), "fleet.crl.pem")
            expect((await cli("ca", "crl", "--ca", fleet.caDir, "--out", out)).code).toBe(0)
            const pem = readFileSync(out, "utf8")

            expect(pem.startsWith("-----BEGIN X509 CRL-----\n")).toBe(true)
            expect(await opensslVerdict(pem, kept)).toBe("accepted")
            expect(await opensslVerdict(pem, lost)).not.toBe("accepted")
        })
})

describe("bad input changes nothing", () => {
    it("bad usage: revoke-operator of an unknown name exits 2, the registry byte for byte",
        async () => {
            const before = registryBytes()

            const unknown = await cli("ca", "revoke-operator", "--ca", fleet.caDir,
                "--name", "mallory")

            expect(unknown.code).toBe(2)
            expect(unknown.json.error).toMatch(/operator mallory is not in the fleet registry/)
            expect(registryBytes()).toEqual(before)
            expect(existsSync(join(fleet.caDir, "registry.json.lock"))).toBe(false)
        })

    it("bad usage: ca crl --days 0 or 400 exits 2, writes no file, keeps the CRL number",
        async () => {
            const dir = tempDir("bulwark-crl-")
            const before = registryBytes()

            const zero = await cli("ca", "crl", "--ca", fleet.caDir, "--out",
                join(dir, "0.pem"), "--days", "0")
            const long = await cli("ca", "crl", "--ca", fleet.caDir, "--out",
                join(dir, "400.pem"), "--days", "400")

            expect(zero.code).toBe(2)
            expect(long.code).toBe(2)
            expect(zero.json.error).toMatch(/--days must be 1 to 365/)
            expect(existsSync(join(dir, "0.pem"))).toBe(false)
            expect(existsSync(join(dir, "400.pem"))).toBe(false)
            expect(registryBytes()).toEqual(before)
        })

    it("bad input: a registry with a non-hex revoked serial makes ca crl exit 2 naming it",
        async () => {
            const caDir = join(tempDir("bulwark-crl-"), "ca")
            expect((await cli("ca", "new", "--out", caDir)).code).toBe(0)
            const registry = { format: "bulwark-fleet-registry", version: 1, devices: [],
                operators: [], revokedSerials: ["5f0a", "serial-7"] }
            writeFileSync(join(caDir, "registry.json"), JSON.stringify(registry))
            const before = registryBytes(caDir)
            const out = join(caDir, "fleet.crl.pem")

            const bad = await cli("ca", "crl", "--ca", caDir, "--out", out)

            expect(bad.code).toBe(2)
            expect(bad.json.error).toMatch(/registry\.json: revoked serial "serial-7" is not a hex/)
            expect(existsSync(out)).toBe(false)
            expect(registryBytes(caDir)).toEqual(before)
        })

    it("GP-TM-21: serials differing only in case or leading zeros are one CRL entry",
        async () => {
            const caDir = join(tempDir("bulwark-crl-"), "ca")
            expect((await cli("ca", "new", "--out", caDir)).code).toBe(0)
            const registry = { format: "bulwark-fleet-registry", version: 1, devices: [],
                operators: [], revokedSerials: ["0A3F", "a3f", "7f01"] }
            writeFileSync(join(caDir, "registry.json"), JSON.stringify(registry))
            const out = join(caDir, "fleet.crl.pem")

            const made = await cli("ca", "crl", "--ca", caDir, "--out", out)

            expect(made.code).toBe(0)
            expect(made.json.revoked).toBe(2)
            expect(parseCrl(out).entries.map((e) => e.serialNumber)).toEqual(["0a3f", "7f01"])
        })
})
