/**
 * The embedded broker of the sim and the demo: aedes behind a TLS server that requires a
 * client certificate from the fleet CA (GP-TM-39, GP-TM-44). The peer's identity comes from
 * its certificate, never from what it claims in CONNECT; each device may publish and
 * subscribe only under bulwark/<its id>/, operators under bulwark/ (GP-TM-21, GP-TM-43, 47, 48).
 */

import { readFileSync } from "node:fs"
import { AddressInfo, Socket } from "node:net"
import { join } from "node:path"
import * as tls from "node:tls"
import { Aedes, AuthenticateError, Client } from "aedes"
import { TLS_CIPHERS, TLS_MIN_VERSION } from "./mqtt"

export const TOPIC_ROOT = "bulwark"
const CLIENT_AUTH_OID = "1.3.6.1.5.5.7.3.2"
const OPERATOR_PREFIX = "operator:"

export interface PeerIdentity {
    role: "device" | "operator"
    /** Device id, or "operator:<name>". */
    name: string
}

export interface BrokerEvent {
    event: "connected" | "refused" | "denied-publish" | "denied-subscribe" | "disconnected"
    /** Who, as named by the certificate; absent when the refusal came before one was known. */
    peer?: string
    topic?: string
    reason?: string
}

export interface BrokerOptions {
    /** Fleet CA directory: ca.cert.pem (the CA key is never read) and registry.json. */
    caDir: string
    /** Broker key.pem and cert.pem; default <caDir>/broker. */
    certDir?: string
    port: number
    /** Listen address; loopback unless given. */
    host?: string
    onEvent?: (event: BrokerEvent) => void
}

export interface RunningBroker {
    port: number
    host: string
    close(): Promise<void>
}

/** Serial numbers of revoked certificates, from the fleet registry (tools/provision.ts). */
function revokedSerials(caDir: string): string[] {
    let text: string
    try {
        text = readFileSync(join(caDir, "registry.json"), "utf8")
    } catch {
        return []
    }
    const registry = JSON.parse(text) as { revokedSerials?: unknown }
    const list = registry.revokedSerials
    if (!Array.isArray(list)) return []
    return list.filter((s): s is string => typeof s === "string").map(serialKey)
}

/**
 * A hex serial as compared here: lower case, no leading zeros. Node prints the peer's serial
 * in upper case with whole octets ("0A3F"), the registry keeps @peculiar/x509's lower case.
 */
export function serialKey(serial: string): string {
    return serial.toLowerCase().replace(/^0+(?=.)/, "")
}

function isDeviceId(value: string): boolean {
    return /^[a-z0-9.-]{1,64}$/.test(value)
}

/**
 * The identity a verified client certificate proves, or the reason it proves none. The TLS
 * layer has already checked the chain to the fleet CA and the validity dates. `revoked` holds
 * serials in serialKey form.
 */
export function identityOf(
    cert: tls.PeerCertificate,
    clientId: string,
    revoked: string[]
): PeerIdentity | string {
    const cn = cert.subject?.CN
    const ou = cert.subject?.OU
    if (typeof cn !== "string" || typeof ou !== "string") return "subject"
    if (!(cert.ext_key_usage ?? []).includes(CLIENT_AUTH_OID)) return "key usage"
    if (revoked.includes(serialKey(cert.serialNumber))) return "revoked"
    if (clientId !== cn) return "client id"
    if (ou === "device" && isDeviceId(cn)) return { role: "device", name: cn }
    if (ou === "operator" && cn.startsWith(OPERATOR_PREFIX) && isDeviceId(cn.slice(9)))
        return { role: "operator", name: cn }
    return "role"
}

/** True when `topic` (a name or a filter) stays inside what `who` may address. */
export function topicAllowed(who: PeerIdentity, topic: string): boolean {
    const levels = topic.split("/")
    if (levels[0] !== TOPIC_ROOT || levels.length < 2) return false
    if (who.role === "operator") return true
    return levels[1] === who.name
}

/**
 * Starts the broker. Resolves once it listens; `port` 0 picks a free port, returned in the
 * result. The server asks every client for a certificate and drops any that does not chain
 * to the fleet CA before a single MQTT byte is read.
 */
export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
    const certDir = options.certDir ?? join(options.caDir, "broker")
    const caPem = readFileSync(join(options.caDir, "ca.cert.pem"), "utf8")
    const key = readFileSync(join(certDir, "key.pem"), "utf8")
    const cert = readFileSync(join(certDir, "cert.pem"), "utf8")
    const host = options.host ?? "127.0.0.1"
    const emit = options.onEvent ?? (() => undefined)
    const identities = new WeakMap<Client, PeerIdentity>()

    const aedes = await Aedes.createBroker({
        heartbeatInterval: 3600_000,
        drainTimeout: 10_000,
        maxTopicLevels: 16,
        authenticate(client, _username, _password, done) {
            const socket = client.conn as tls.TLSSocket
            const peer = socket.authorized ? socket.getPeerCertificate() : undefined
            const who = peer
                ? identityOf(peer, client.id, revokedSerials(options.caDir))
                : "certificate"
            if (typeof who === "string") {
                emit({ event: "refused", peer: String(peer?.subject?.CN ?? ""), reason: who })
                const err = new Error("not authorised") as AuthenticateError
                err.returnCode = 5
                return done(err, false)
            }
            identities.set(client, who)
            emit({ event: "connected", peer: who.name })
            done(null, true)
        },
        authorizePublish(client, packet, done) {
            const who = client ? identities.get(client) : undefined
            if (who && topicAllowed(who, packet.topic)) return done(null)
            emit({ event: "denied-publish", peer: who?.name, topic: packet.topic })
            done(new Error("publish not authorised"))
        },
        authorizeSubscribe(client, sub, done) {
            const who = identities.get(client)
            if (who && topicAllowed(who, sub.topic)) return done(null, sub)
            emit({ event: "denied-subscribe", peer: who?.name, topic: sub.topic })
            done(null, null)
        },
        authorizeForward(client, packet) {
            const who = identities.get(client)
            return who && topicAllowed(who, packet.topic) ? packet : null
        },
    })
    aedes.on("clientDisconnect", (client) => {
        const who = identities.get(client)
        if (who) emit({ event: "disconnected", peer: who.name })
    })

    const server = tls.createServer(
        {
            key,
            cert,
            ca: [caPem],
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: TLS_MIN_VERSION,
            ciphers: TLS_CIPHERS,
            honorCipherOrder: true,
            handshakeTimeout: 10_000,
        },
        (socket) => {
            // Small request/answer messages: no Nagle delay on the broker's side either.
            socket.setNoDelay(true)
            aedes.handle(socket)
        }
    )
    // Node checks the client chain after the handshake and destroys the socket when it
    // fails; the verification error is left on the socket.
    server.on("tlsClientError", (err, socket) => {
        const reason = socket.authorizationError
        emit({ event: "refused", reason: reason ? String(reason) : err.message })
    })
    const sockets = new Set<Socket>()
    server.on("connection", (socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
    })

    await new Promise<void>((resolve, reject) => {
        server.once("error", reject)
        server.listen(options.port, host, () => {
            server.off("error", reject)
            resolve()
        })
    })
    const port = (server.address() as AddressInfo).port

    let closed = false
    return {
        port,
        host,
        async close() {
            if (closed) return
            closed = true
            const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
            await new Promise<void>((resolve) => aedes.close(() => resolve()))
            for (const socket of sockets) socket.destroy()
            await stopped
        },
    }
}
