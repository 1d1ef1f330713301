/**
 * Fixtures of the transport suites: a fleet CA with a broker certificate in a temp dir,
 * device credentials made on the host (for broker tests that need no board) or by
 * provisioning a sim board (registered, so it can be revoked), raw TLS and TCP probes, and
 * connect options. Keys made here are test keys, not device identities.
 */

import { generateKeyPairSync, X509Certificate } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { connect as netConnect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tls from "node:tls"
import * as mqtt from "mqtt-packet"
import { MqttConnectOptions } from "../../hal/mqtt"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { SimMqttTransport } from "../../sim/mqtt"
import { makeTestBoard } from "../../sim/testing"
import { PARTITION_IDENTITY, readIdentity } from "../../src/identity"
import {
    createCa,
    FleetCa,
    issueBrokerCertificate,
    issueDeviceCertificate,
    issueOperatorCertificate,
    loadCa,
    Validity,
} from "../../tools/ca"
import { provision } from "../../tools/provision"

const dirs: string[] = []

export function tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix))
    dirs.push(dir)
    return dir
}

export function removeTempDirs(): void {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

export interface Fleet {
    caDir: string
    brokerDir: string
    ca: FleetCa
}

/** A fleet CA and a broker certificate for "localhost" (as devs.config.json expects). */
export async function makeFleet(name = "Test fleet", hosts = ["localhost"]): Promise<Fleet> {
    const caDir = join(tempDir("bulwark-ca-"), "ca")
    await createCa(caDir, name)
    const ca = await loadCa(caDir)
    const brokerDir = join(caDir, "broker")
    await issueBrokerCertificate(ca, hosts, brokerDir)
    return { caDir, brokerDir, ca }
}

export interface Credentials {
    id: string
    certPem: string
    keyPem: string
    serial: string
}

function newKey(): { raw: Buffer; keyPem: string } {
    const pair = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const jwk = pair.publicKey.export({ format: "jwk" })
    const raw = Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x as string, "base64url"),
        Buffer.from(jwk.y as string, "base64url"),
    ])
    return { raw, keyPem: pair.privateKey.export({ format: "pem", type: "pkcs8" }) as string }
}

/** A device certificate from `ca` for a host-made key. */
export async function deviceCredentials(
    ca: FleetCa,
    id: string,
    validity?: Validity
): Promise<Credentials> {
    const key = newKey()
    const cert = await issueDeviceCertificate(ca, id, key.raw, validity)
    return { id, certPem: cert.certPem, keyPem: key.keyPem, serial: cert.serial }
}

/** The key.pem and cert.pem that `ca issue-operator --out DIR` wrote, for client id `id`. */
export function credentialsIn(dir: string, id: string): Credentials {
    const certPem = readFileSync(join(dir, "cert.pem"), "utf8")
    return {
        id,
        certPem,
        keyPem: readFileSync(join(dir, "key.pem"), "utf8"),
        serial: new X509Certificate(certPem).serialNumber.toLowerCase(),
    }
}

/** An operator certificate; its client id is "operator:<name>". */
export async function operatorCredentials(ca: FleetCa, name: string): Promise<Credentials> {
    const dir = join(tempDir("bulwark-op-"), "op")
    await issueOperatorCertificate(ca, name, dir)
    return credentialsIn(dir, "operator:" + name)
}

/**
 * A sim test board provisioned by the CA in `caDir` (so it is in the registry and `ca revoke`
 * knows it), as credentials: its certificate, and its secure-element key through the sim-only
 * TLS-engine path. Callers run cleanupTestBoards() afterwards.
 */
export async function provisionedCredentials(
    caDir: string,
    id?: string
): Promise<Credentials & { dir: string }> {
    const fresh = await makeTestBoard()
    fresh.close()
    await provision({ devDir: fresh.dir, caDir, id, iterations: 1000 })
    return { ...(await boardCredentials(fresh.dir)), dir: fresh.dir }
}

/** The credentials a (closed) provisioned sim board in `dir` holds now. */
export async function boardCredentials(dir: string): Promise<Credentials> {
    const board = await SimBoard.open(dir)
    try {
        const partition = board.flash.partition(PARTITION_IDENTITY)
        const identity = (await readIdentity(board.crypto, board.secureElement, partition))!
        return {
            id: identity.deviceId,
            certPem: identity.certificatePem,
            keyPem: board.secureElement.tlsPrivateKeyPem(SE_SLOT_IDENTITY),
            serial: new X509Certificate(identity.certificatePem).serialNumber.toLowerCase(),
        }
    } finally {
        board.close()
    }
}

export function transportFor(c: Credentials): SimMqttTransport {
    return new SimMqttTransport({
        certificatePem: async () => c.certPem,
        privateKeyPem: () => c.keyPem,
    })
}

export function connectOptions(port: number, ca: FleetCa, clientId: string): MqttConnectOptions {
    return {
        host: "127.0.0.1",
        port,
        clientId,
        serverName: "localhost",
        caPem: ca.certPem,
        keepAliveSec: 30,
        auth: "certificate",
        connectTimeoutMs: 5000,
        maxPayload: 4096,
    }
}

/** An MQTT CONNECT packet, as a plaintext client would send it. */
export function connectPacket(clientId: string): Buffer {
    return mqtt.generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 4,
        clean: true,
        clientId,
        keepalive: 30,
    })
}

/**
 * Sends a plaintext CONNECT over TCP and collects every byte until the server closes (or
 * 3 s pass). A CONNACK would start with 0x20.
 */
export function plaintextConnect(port: number): Promise<Buffer> {
    return new Promise((resolve) => {
        const chunks: Buffer[] = []
        const socket = netConnect(port, "127.0.0.1", () => socket.write(connectPacket("dev-plain")))
        const timer = setTimeout(() => socket.destroy(), 3000)
        socket.on("data", (c) => chunks.push(c))
        socket.on("error", () => undefined)
        socket.on("close", () => {
            clearTimeout(timer)
            resolve(Buffer.concat(chunks))
        })
    })
}

/**
 * A TLS client with explicit options, that sends CONNECT once secure and reports whether a
 * CONNACK with return code 0 came back ("accepted"), or how it failed.
 */
export function tlsConnectProbe(
    port: number,
    options: tls.ConnectionOptions,
    clientId: string
): Promise<string> {
    return new Promise((resolve) => {
        let settled = false
        const done = (verdict: string) => {
            if (settled) return
            settled = true
            socket.destroy()
            resolve(verdict)
        }
        const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...options })
        const parser = mqtt.parser({ protocolVersion: 4 })
        parser.on("packet", (p: mqtt.Packet) => {
            if (p.cmd !== "connack") return
            done(p.returnCode === 0 ? "accepted" : "connack-" + p.returnCode)
        })
        socket.on("secureConnect", () => socket.write(connectPacket(clientId)))
        socket.on("data", (c: Buffer) => parser.parse(c))
        socket.on("error", (e: NodeJS.ErrnoException) => done("error:" + (e.code ?? e.message)))
        socket.on("close", () => done("closed"))
        setTimeout(() => done("timeout"), 5000)
    })
}
