/**
 * The operator's side of the broker, shared by the commands that address devices over MQTT
 * (`bulwark ota publish`, `bulwark ca renew-online`; docs/transport.md; GP-TM-39, GP-TM-40):
 * the broker address, the operator's certificate and key from `ca issue-operator --out DIR`,
 * and a mutual-TLS session as "operator:<name>" pinned to the fleet CA.
 */

import { X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { isIP } from "node:net"
import { join } from "node:path"

import { isSafeName } from "../boot/profile"
import { MqttMessage, MqttSession } from "../hal/mqtt"
import { SimMqttTransport } from "../sim/mqtt"
import { UsageError } from "./args"
import { OPERATOR_PREFIX } from "./ca"

export interface OperatorCredentials {
    /** Operator name; the certificate's CN is "operator:<name>". */
    name: string
    certPem: string
    keyPem: string
}

export function readText(path: string, what: string): string {
    try {
        return readFileSync(path, "utf8")
    } catch {
        throw new UsageError(`cannot read ${what}: ${path}`)
    }
}

/** HOST:PORT, with [v6]:PORT for IPv6. */
export function parseBroker(text: string): { host: string; port: number } {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(text)
    const port = m ? Number(m[3]) : 0
    if (!m || port < 1 || port > 65535) throw new UsageError("--broker must be HOST:PORT")
    return { host: m[1] ?? m[2], port }
}

/** The broker certificate of the embedded broker names "localhost"; other hosts name themselves. */
export function defaultServerName(host: string): string {
    if (host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127.")))
        return "localhost"
    return host
}

/** cert.pem and key.pem of `bulwark ca issue-operator --out DIR`; the name from the CN. */
export function readOperator(dir: string): OperatorCredentials {
    const certPem = readText(join(dir, "cert.pem"), "operator certificate")
    const keyPem = readText(join(dir, "key.pem"), "operator key")
    let cn = ""
    try {
        const subject = new X509Certificate(certPem).subject.split("\n")
        cn = (subject.find((l) => l.startsWith("CN=")) ?? "").slice(3)
    } catch {
        throw new UsageError("operator certificate does not parse")
    }
    if (!cn.startsWith(OPERATOR_PREFIX) || !isSafeName(cn.slice(OPERATOR_PREFIX.length)))
        throw new UsageError("not an operator certificate (CN=operator:NAME)")
    return { name: cn.slice(OPERATOR_PREFIX.length), certPem, keyPem }
}

/** The value of --devices: a comma-separated list of device ids, at least one. */
export function parseDeviceIds(given: string): string[] {
    const ids = given.split(",").filter((s) => s.length > 0)
    for (const id of ids) if (!isSafeName(id)) throw new UsageError(`not a device id: ${id}`)
    if (ids.length === 0) throw new UsageError("--devices lists no device")
    return ids
}

export interface OperatorLink {
    broker: { host: string; port: number }
    /** Name the broker certificate must carry (default: the broker host). */
    serverName?: string
    /** PEM of the fleet CA the broker certificate chains to. */
    caPem: string
    operator: OperatorCredentials
    /** Largest inbound payload accepted (default 64 KiB). */
    maxPayload?: number
}

/** Opens the operator's session; TransportError when the broker is away or refuses it. */
export async function connectOperator(link: OperatorLink): Promise<MqttSession> {
    const transport = new SimMqttTransport({
        certificatePem: async () => link.operator.certPem,
        privateKeyPem: () => link.operator.keyPem,
    })
    return await transport.connect({
        host: link.broker.host,
        port: link.broker.port,
        clientId: OPERATOR_PREFIX + link.operator.name,
        serverName: link.serverName ?? link.broker.host,
        caPem: link.caPem,
        keepAliveSec: 30,
        auth: "certificate",
        connectTimeoutMs: 10000,
        maxPayload: link.maxPayload ?? 65536,
    })
}

/**
 * Reads an operator session's messages against the caller's deadline: `next(waitMs)` gives
 * the next message, null once the broker has closed the session, or "timeout" after at most
 * `waitMs`, leaving the message it waited for to the next call.
 */
export class SessionReader {
    private pending: Promise<MqttMessage | null>

    constructor(private readonly session: MqttSession) {
        this.pending = session.receive()
    }

    async next(waitMs: number): Promise<MqttMessage | null | "timeout"> {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), waitMs)
        })
        const message = await Promise.race([this.pending, timeout])
        clearTimeout(timer)
        if (message !== "timeout" && message !== null) this.pending = this.session.receive()
        return message
    }
}
