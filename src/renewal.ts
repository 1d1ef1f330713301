/**
 * Certificate renewal over the network (docs/provisioning.md, "Renewal over the network";
 * GP-TM-21, GP-TM-35, GP-TM-49, GP-TM-55): an operator-signed message on
 * bulwark/<id>/cert/renew either asks for the device's identity public key (kind 1) or
 * brings a new certificate for it (kind 2). The device verifies first (right device, listed
 * operator key, signature in the secure element, expiry, nonce; then that the certificate
 * certifies its own key, names it, and was signed by the pinned fleet CA), and only then
 * writes it into the identity record, power-safely, with the previous certificate kept
 * until a connection with the new one succeeds (confirm) or fails (revert).
 */

import { concatBytes, equalBytes, readU16, readU32, writeU16, writeU32 } from "../boot/bytes"
import { isSafeName } from "../boot/profile"
import { Clock } from "../hal/clock"
import { Crypto } from "../hal/crypto"
import { CheckError } from "../hal/errors"
import { FlashPartition } from "../hal/flash"
import { SE_SLOT_IDENTITY, SecureElement } from "../hal/secure-element"
import { DeviceIdentity, IdentityError, readIdentity, writeIdentity } from "./identity"
import { checkOperatorRequest } from "./operator-request"
import {
    CertificateError,
    CertificateFields,
    commonName,
    derToPem,
    parseCertificate,
    pemToDer,
    sameName,
} from "./x509"

export const RENEWAL_MAGIC = "BWCR"
export const RENEWAL_VERSION = 1
/** Prefix of the message an operator signs (ECDSA P-256 over SHA-256 of label || body). */
export const RENEWAL_LABEL = "bulwark-cert-renew-v1"
/** Kind 1: send me your identity public key. Kind 2: install this certificate. */
export const KIND_KEY_REQUEST = 1
export const KIND_CERTIFICATE = 2
export const NONCE_LENGTH = 16
export const PUBLIC_KEY_LENGTH = 65
export const SIGNATURE_LENGTH = 64
/** A device certificate is ~500 bytes; three PEMs must fit one identity copy (4 KiB). */
export const MAX_RENEWAL_CERTIFICATE = 1024
const MAX_DEVICE_ID = 64
/** Fixed bytes: magic, version, kind, id length, nonce, expiry, operator key, cert length. */
const FIXED_LENGTH = 4 + 1 + 1 + 1 + NONCE_LENGTH + 4 + PUBLIC_KEY_LENGTH + 2

/** The audit event of every renewal step (src/audit/chain.ts EVENTS.certRenewal). */
export const RENEWAL_EVENT = "cert-renewal"
/** What a refused message, or a certificate the broker refused, gets on cert/status. */
export const REFUSED_STATUS = '{"ok":false,"error":"refused"}'
/** Sent once the device connected with its new certificate. */
export const INSTALLED_STATUS = '{"ok":true,"state":"installed"}'

/**
 * Checks: "format" (not a renewal message), "device" (for another device), "operator" (key
 * not in security.operatorKeys), "signature", "expired" (only when the device knows the
 * time), "replayed" (nonce seen since boot), "identity" (no identity to renew),
 * "certificate" (not a DER certificate this device reads), "key" (it certifies another
 * key), "subject" (its CN is not the device id), "issuer" (its issuer is not the pinned
 * fleet CA's subject), "chain" (the fleet CA's signature does not verify), "stale" (older
 * than the certificate installed), "record" (the identity record would not fit).
 * Only the audit log sees the check; cert/status says "refused" (GP-TM-53).
 */
export class RenewalError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "renewal: " + check + ": " + message)
        this.name = "RenewalError"
    }
}

export interface RenewalMessage {
    kind: number
    deviceId: string
    nonce: Buffer
    /** Wall-clock seconds after which the device refuses it; 0 for none. */
    expires: number
    operatorKey: Buffer
    /** DER of the new certificate (kind 2); empty for kind 1. */
    certificate: Buffer
    signature: Buffer
    /** The bytes the signature covers, without the label. */
    signedPart: Buffer
}

function fail(check: string, message: string): RenewalError {
    return new RenewalError(check, message)
}

/** The unsigned part of a message, for the operator's tool to sign. */
export function encodeRenewalBody(
    kind: number,
    deviceId: string,
    nonce: Buffer,
    expires: number,
    operatorKey: Buffer,
    certificate: Buffer
): Buffer {
    const id = Buffer.from(deviceId)
    if (!isSafeName(deviceId) || id.length > MAX_DEVICE_ID) throw fail("format", "device id")
    if (kind !== KIND_KEY_REQUEST && kind !== KIND_CERTIFICATE) throw fail("format", "kind")
    if (nonce.length !== NONCE_LENGTH) throw fail("format", "nonce")
    if (operatorKey.length !== PUBLIC_KEY_LENGTH) throw fail("format", "operator key")
    const certOk = kind === KIND_KEY_REQUEST ? certificate.length === 0
        : certificate.length >= 1 && certificate.length <= MAX_RENEWAL_CERTIFICATE
    if (!certOk) throw fail("format", "certificate length")
    const head = Buffer.alloc(7)
    const magic = Buffer.from(RENEWAL_MAGIC)
    for (let i = 0; i < 4; i++) head[i] = magic[i]
    head[4] = RENEWAL_VERSION
    head[5] = kind
    head[6] = id.length
    const expiry = Buffer.alloc(4)
    writeU32(expiry, 0, expires)
    const certLength = Buffer.alloc(2)
    writeU16(certLength, 0, certificate.length)
    return concatBytes([head, id, nonce, expiry, operatorKey, certLength, certificate])
}

/** The message an operator signs. */
export function renewalSignedMessage(body: Buffer): Buffer {
    return concatBytes([Buffer.from(RENEWAL_LABEL), body])
}

/** Parses a message; every length is checked before use. Only RenewalError "format". */
export function decodeRenewal(bytes: Buffer): RenewalMessage {
    if (bytes.length < FIXED_LENGTH + SIGNATURE_LENGTH) throw fail("format", "length")
    if (bytes.slice(0, 4).toString("hex") !== Buffer.from(RENEWAL_MAGIC).toString("hex"))
        throw fail("format", "magic")
    if (bytes[4] !== RENEWAL_VERSION) throw fail("format", "version")
    const kind = bytes[5]
    if (kind !== KIND_KEY_REQUEST && kind !== KIND_CERTIFICATE) throw fail("format", "kind")
    const idLength = bytes[6]
    if (idLength < 1 || idLength > MAX_DEVICE_ID) throw fail("format", "device id")
    if (bytes.length < FIXED_LENGTH + idLength + SIGNATURE_LENGTH) throw fail("format", "length")
    let p = 7
    const idBytes = bytes.slice(p, p + idLength)
    for (let i = 0; i < idBytes.length; i++)
        if (idBytes[i] < 0x21 || idBytes[i] > 0x7e) throw fail("format", "device id")
    const deviceId = idBytes.toString()
    if (!isSafeName(deviceId)) throw fail("format", "device id")
    p += idLength
    const nonce = bytes.slice(p, p + NONCE_LENGTH)
    p += NONCE_LENGTH
    const expires = readU32(bytes, p)
    p += 4
    const operatorKey = bytes.slice(p, p + PUBLIC_KEY_LENGTH)
    p += PUBLIC_KEY_LENGTH
    const certLength = readU16(bytes, p)
    p += 2
    const certOk = kind === KIND_KEY_REQUEST ? certLength === 0
        : certLength >= 1 && certLength <= MAX_RENEWAL_CERTIFICATE
    if (!certOk || bytes.length !== p + certLength + SIGNATURE_LENGTH)
        throw fail("format", "certificate length")
    return {
        kind: kind,
        deviceId: deviceId,
        nonce: nonce,
        expires: expires,
        operatorKey: operatorKey,
        certificate: bytes.slice(p, p + certLength),
        signature: bytes.slice(p + certLength),
        signedPart: bytes.slice(0, p + certLength),
    }
}

/** What the device needs to serve renewals. */
export interface RenewalContext {
    secureElement: SecureElement
    crypto: Crypto
    clock: Clock
    /** The identity partition (src/identity.ts). */
    partition: FlashPartition
    deviceId: string
    /** Operator public keys (65-byte P-256) of the profile's security.operatorKeys. */
    operatorKeys: Buffer[]
    /** Nonces of recent messages (RAM; a few suffice against replays since boot). */
    recentNonces: string[]
}

/**
 * Right device, listed operator key, signature valid (checked by the secure element), not
 * expired when the device knows the time, nonce not seen since boot. Throws RenewalError.
 */
export async function authorizeRenewal(ctx: RenewalContext, m: RenewalMessage): Promise<void> {
    const refused = await checkOperatorRequest(ctx, {
        deviceId: m.deviceId,
        operatorKey: m.operatorKey,
        digest: ctx.crypto.sha256([renewalSignedMessage(m.signedPart)]),
        signature: m.signature,
        expires: m.expires,
        nonce: m.nonce,
    })
    if (refused !== null) throw fail(refused.check, refused.message)
}

function parsed(der: Buffer, check: string): CertificateFields {
    try {
        return parseCertificate(der)
    } catch (e) {
        if (e instanceof CertificateError) throw fail(check, e.message)
        throw e
    }
}

/**
 * Checks a new certificate against what the device knows: it certifies the identity key
 * in the secure element, its only CN is the device id, its issuer is the pinned fleet CA's
 * subject and the CA's key signed it, and it is not older than the one installed (an old
 * renewal replayed after a reboot cannot bring back a certificate that expires sooner).
 */
export async function checkRenewedCertificate(
    ctx: RenewalContext,
    identity: DeviceIdentity,
    der: Buffer
): Promise<CertificateFields> {
    const cert = parsed(der, "certificate")
    const own = await ctx.secureElement.publicKey(SE_SLOT_IDENTITY)
    if (!equalBytes(cert.publicKey, own)) throw fail("key", "certifies another key")
    let cn: string | null = null
    try {
        cn = commonName(cert.subject)
    } catch (e) {
        if (!(e instanceof CertificateError)) throw e
    }
    if (cn !== ctx.deviceId) throw fail("subject", "CN is not the device id")
    const ca = parsed(pemToDerOr(identity.caPem, "issuer"), "issuer")
    if (!sameName(cert.issuer, ca.subject)) throw fail("issuer", "not the pinned fleet CA")
    const digest = ctx.crypto.sha256([cert.tbs])
    let signed = false
    try {
        signed = await ctx.secureElement.verifyDigest(ca.publicKey, digest, cert.signature)
    } catch (e) {
        signed = false
    }
    if (!signed) throw fail("chain", "not signed by the pinned fleet CA")
    const current = parsed(pemToDerOr(identity.certificatePem, "stale"), "stale")
    if (earlier(cert.notBefore, current.notBefore))
        throw fail("stale", "older than the installed one")
    return cert
}

/** a < b for two times of the same YYYYMMDDHHMMSSZ form, compared digit by digit. */
function earlier(a: string, b: string): boolean {
    for (let i = 0; i < a.length && i < b.length; i++) {
        const d = a.charCodeAt(i) - b.charCodeAt(i)
        if (d !== 0) return d < 0
    }
    return false
}

function pemToDerOr(pem: string, check: string): Buffer {
    try {
        return pemToDer(pem)
    } catch (e) {
        if (e instanceof CertificateError) throw fail(check, e.message)
        throw e
    }
}

async function currentIdentity(ctx: RenewalContext): Promise<DeviceIdentity> {
    const identity = await readIdentity(ctx.crypto, ctx.secureElement, ctx.partition)
    if (identity === null) throw fail("identity", "not provisioned")
    return identity
}

function withCertificate(identity: DeviceIdentity, pem: string, previous: string | null) {
    const next: DeviceIdentity = {
        deviceId: identity.deviceId,
        certificatePem: pem,
        caPem: identity.caPem,
        setupCode: identity.setupCode,
    }
    if (previous !== null) next.previousCertificatePem = previous
    return next
}

/**
 * Writes the new certificate on trial: the record keeps the certificate that last
 * connected as previousCertificatePem. One identity write (src/identity.ts), so a power
 * cut leaves the old record or the new one, both whole.
 */
async function installCertificate(ctx: RenewalContext, identity: DeviceIdentity, pem: string) {
    const known = identity.previousCertificatePem
    const previous = known === undefined ? identity.certificatePem : known
    try {
        await writeIdentity(ctx.crypto, ctx.secureElement, ctx.partition,
            withCertificate(identity, pem, previous))
    } catch (e) {
        if (e instanceof IdentityError) throw fail("record", e.message)
        throw e
    }
}

/** A connection with the new certificate succeeded: the previous one is dropped. */
export async function confirmRenewal(ctx: RenewalContext): Promise<boolean> {
    const identity = await currentIdentity(ctx)
    if (identity.previousCertificatePem === undefined) return false
    await writeIdentity(ctx.crypto, ctx.secureElement, ctx.partition,
        withCertificate(identity, identity.certificatePem, null))
    return true
}

/** The broker refused the new certificate: the previous one is installed again. */
export async function revertRenewal(ctx: RenewalContext): Promise<boolean> {
    const identity = await currentIdentity(ctx)
    const previous = identity.previousCertificatePem
    if (previous === undefined) return false
    await writeIdentity(ctx.crypto, ctx.secureElement, ctx.partition,
        withCertificate(identity, previous, null))
    return true
}

/** The outcome of one message: the check ("ok" when accepted) and what to answer. */
export interface RenewalOutcome {
    check: string
    kind: number
    /** The reply to publish now on cert/status; null when it waits for the reconnect. */
    reply: Buffer | null
    /** A new certificate went on trial: reconnect, then confirm or revert. */
    installed: boolean
    /** Lower-case hex serial of the installed certificate ("" otherwise). */
    serial: string
    /** First 16 hex digits of SHA-256 of the operator key, for the audit actor. */
    operator: string
}

function keyReply(publicKey: Buffer): Buffer {
    return Buffer.from('{"ok":true,"publicKey":"' + publicKey.toString("hex") + '"}')
}

/**
 * Serves one message from cert/renew. Kind 1 answers with the identity public key; kind 2
 * installs the certificate on trial. Any RenewalError is a refusal: nothing is written.
 */
export async function serveRenewal(ctx: RenewalContext, bytes: Buffer): Promise<RenewalOutcome> {
    const outcome: RenewalOutcome = {
        check: "ok", kind: 0, reply: null, installed: false, serial: "", operator: "",
    }
    try {
        const m = decodeRenewal(bytes)
        outcome.kind = m.kind
        await authorizeRenewal(ctx, m)
        outcome.operator = ctx.crypto.sha256([m.operatorKey]).toString("hex").slice(0, 16)
        if (m.kind === KIND_KEY_REQUEST) {
            outcome.reply = keyReply(await ctx.secureElement.publicKey(SE_SLOT_IDENTITY))
            return outcome
        }
        const identity = await currentIdentity(ctx)
        const cert = await checkRenewedCertificate(ctx, identity, m.certificate)
        await installCertificate(ctx, identity, derToPem(m.certificate))
        outcome.installed = true
        outcome.serial = cert.serial.toString("hex")
        return outcome
    } catch (e) {
        if (!(e instanceof RenewalError)) throw e
        outcome.check = e.check
        outcome.reply = Buffer.from(REFUSED_STATUS)
        return outcome
    }
}
