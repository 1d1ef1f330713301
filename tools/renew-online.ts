/**
 * Certificate renewal over the network, the operator's side (`bulwark ca renew-online`;
 * docs/provisioning.md, "Renewal over the network"; GP-TM-21, GP-TM-35, GP-TM-49): picks the
 * registry's devices whose certificate ends within N days (or the listed ones), asks each
 * for its identity public key with an operator-signed message on bulwark/<id>/cert/renew,
 * checks that key against the registry, issues a certificate for that same key (recorded
 * as `provision renew` records it) and sends it, signed, to the device; then waits for each
 * device's cert/status: installed (it reconnected with it) or refused.
 */

import { X509Certificate, createPrivateKey, randomBytes } from "node:crypto"
import { p256 } from "@noble/curves/nist.js"

import { MqttSession } from "../hal/mqtt"
import {
    KIND_CERTIFICATE,
    KIND_KEY_REQUEST,
    NONCE_LENGTH,
    encodeRenewalBody,
    renewalSignedMessage,
} from "../src/renewal"
import { SimCrypto } from "../sim/crypto"
import { RefusedError, UsageError } from "./args"
import { FleetCa, Validity, loadCa } from "./ca"
import { OperatorCredentials, SessionReader, connectOperator } from "./operator-link"
import { Registry, readRegistry, renewRegistered, updateRegistry } from "./provision"

const DAY_MS = 24 * 3600 * 1000
const ROOT = "bulwark/"
const crypto = new SimCrypto()

export interface RenewOnlineOptions {
    broker: { host: string; port: number }
    serverName?: string
    caDir: string
    operator: OperatorCredentials
    /** Renew exactly these (each must be registered); default: every device due. */
    devices?: string[]
    /** A device is due when its notAfter is at most this many days away. */
    withinDays: number
    validity?: Validity
    /** How long to wait for every device's answer. */
    timeoutMs: number
    log?: (line: string) => void
}

export interface RenewDeviceResult {
    deviceId: string
    ok: boolean
    /** "renewed", "refused" (by the device, or by the registry check here) or "timeout". */
    state: "renewed" | "refused" | "timeout"
    /** How far it got: "key" (asked for its key) or "certificate" (sent the certificate). */
    step: "key" | "certificate"
    /** Why, when refused here: "revoked", "key" (not the registered key), "reply". */
    check: string | null
    certSerial: string | null
    notAfter: string | null
}

interface Target {
    result: RenewDeviceResult
    final: boolean
}

/** The registry's devices that are due, or the listed ones (unknown ids are bad usage). */
export function renewalTargets(
    registry: Registry,
    devices: string[] | undefined,
    withinDays: number,
    nowMs: number
): { id: string; revoked: boolean }[] {
    if (devices !== undefined) {
        return devices.map((id) => {
            const entry = registry.devices.find((d) => d.id === id)
            if (!entry) throw new UsageError(`device ${id} is not in the fleet registry`)
            return { id, revoked: entry.revoked }
        })
    }
    return registry.devices
        .filter((d) => !d.revoked && Date.parse(d.notAfter) - nowMs <= withinDays * DAY_MS)
        .map((d) => ({ id: d.id, revoked: false }))
}

/** The operator's P-256 private scalar and 65-byte public key from key.pem. */
function operatorKeys(keyPem: string): { secret: Buffer; publicKey: Buffer } {
    let d: string | undefined
    try {
        const jwk = createPrivateKey(keyPem).export({ format: "jwk" })
        d = jwk.kty === "EC" && jwk.crv === "P-256" ? jwk.d : undefined
    } catch {
        d = undefined
    }
    if (d === undefined) throw new UsageError("the operator key is not a P-256 private key")
    const secret = Buffer.from(d, "base64url")
    return { secret, publicKey: Buffer.from(p256.getPublicKey(secret, false)) }
}

/** One signed cert/renew message (docs/provisioning.md gives the bytes). */
export function signRenewal(
    keyPem: string,
    kind: number,
    deviceId: string,
    expires: number,
    certificate: Buffer
): Buffer {
    const keys = operatorKeys(keyPem)
    const body = encodeRenewalBody(kind, deviceId, randomBytes(NONCE_LENGTH), expires,
        keys.publicKey, certificate)
    const digest = crypto.sha256([renewalSignedMessage(body)])
    const signature = p256.sign(digest, keys.secret, { prehash: false, lowS: true })
    return Buffer.concat([body, Buffer.from(signature)])
}

function deviceOf(topic: string): string | null {
    const levels = topic.split("/")
    if (levels.length !== 4 || levels[0] !== "bulwark" || levels[2] !== "cert") return null
    return levels[3] === "status" ? levels[1] : null
}

function statusOf(payload: Buffer): { ok: boolean; publicKey?: string; state?: string } | null {
    try {
        const v = JSON.parse(payload.toString("utf8"))
        return v !== null && typeof v === "object" && typeof v.ok === "boolean" ? v : null
    } catch {
        return null
    }
}

/**
 * Runs one renewal round and returns a result per target, in registry or --devices order.
 * TransportError when the broker cannot be reached or refuses the operator.
 */
export async function renewOnline(options: RenewOnlineOptions): Promise<RenewDeviceResult[]> {
    const ca = await loadCa(options.caDir)
    operatorKeys(options.operator.keyPem)
    const chosen = renewalTargets(readRegistry(options.caDir), options.devices,
        options.withinDays, Date.now())
    const targets = new Map<string, Target>()
    for (const c of chosen) {
        const result: RenewDeviceResult = {
            deviceId: c.id, ok: false, state: "refused", step: "key",
            check: c.revoked ? "revoked" : null, certSerial: null, notAfter: null,
        }
        targets.set(c.id, { result, final: c.revoked })
    }
    const results = () => chosen.map((c) => targets.get(c.id)!.result)
    if ([...targets.values()].every((t) => t.final)) return results()

    const expires = Math.floor(Date.now() / 1000) + Math.ceil(options.timeoutMs / 1000)
    const session = await connectOperator({ ...options, caPem: ca.certPem })
    try {
        await session.subscribe(ROOT + "+/cert/status", 1)
        for (const [id, t] of targets) {
            if (t.final) continue
            const ask = signRenewal(options.operator.keyPem, KIND_KEY_REQUEST, id, expires,
                Buffer.alloc(0))
            await session.publish(ROOT + id + "/cert/renew", ask, 1)
        }
        await follow(session, options, ca, targets, expires)
    } finally {
        await session.close()
    }
    return results()
}

async function follow(
    session: MqttSession,
    options: RenewOnlineOptions,
    ca: FleetCa,
    targets: Map<string, Target>,
    expires: number
): Promise<void> {
    const deadline = Date.now() + options.timeoutMs
    const reader = new SessionReader(session)
    while ([...targets.values()].some((t) => !t.final)) {
        const left = deadline - Date.now()
        if (left <= 0) break
        const message = await reader.next(Math.min(left, 1000))
        if (message === "timeout") continue
        if (message === null) throw new RefusedError("the broker closed the operator session")
        const id = deviceOf(message.topic)
        const t = id === null ? undefined : targets.get(id)
        const status = statusOf(message.payload)
        if (id === null || t === undefined || t.final || status === null) continue
        await onStatus(session, options, ca, id, t, status, expires)
    }
    for (const t of targets.values()) {
        if (t.final) continue
        t.final = true
        t.result.state = "timeout"
    }
}

async function onStatus(
    session: MqttSession,
    options: RenewOnlineOptions,
    ca: FleetCa,
    id: string,
    t: Target,
    status: { ok: boolean; publicKey?: string; state?: string },
    expires: number
): Promise<void> {
    const r = t.result
    options.log?.(`${id}: ${r.step} ${status.ok ? "ok" : "refused"}`)
    if (!status.ok) {
        t.final = true
        r.state = "refused"
        r.check = "reply"
        return
    }
    if (r.step === "certificate") {
        if (status.state !== "installed") return
        t.final = true
        r.ok = true
        r.state = "renewed"
        return
    }
    if (typeof status.publicKey !== "string" || !/^04[0-9a-f]{128}$/.test(status.publicKey)) return
    const publicKey = Buffer.from(status.publicKey, "hex")
    let issued
    try {
        issued = await updateRegistry(options.caDir, (registry) =>
            renewRegistered(ca, registry, id, publicKey, options.validity))
    } catch (err) {
        const known = err instanceof RefusedError && /not registered|revoked/.test(err.message)
        if (!known) throw err
        t.final = true
        r.state = "refused"
        r.check = /revoked/.test(err.message) ? "revoked" : "key"
        return
    }
    r.step = "certificate"
    r.certSerial = issued.serial
    r.notAfter = issued.notAfter
    const der = Buffer.from(new X509Certificate(issued.certPem).raw)
    const message = signRenewal(options.operator.keyPem, KIND_CERTIFICATE, id, expires, der)
    await session.publish(ROOT + id + "/cert/renew", message, 1)
}
