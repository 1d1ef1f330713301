/**
 * The fleet certificate authority (DESIGN.md section 5; GP-TM-21, GP-TM-35, GP-TM-37): a P-256
 * CA kept in a directory, and the certificates it issues: device (client auth, subject CN =
 * device id, OU=device), broker (server auth, SAN = host names) and operator (client auth,
 * OU=operator). Private keys are written once, mode 0600, and never overwritten.
 */

import "reflect-metadata"
import { randomBytes, X509Certificate as NodeX509, webcrypto } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { isIP } from "node:net"
import { join } from "node:path"
import * as x509 from "@peculiar/x509"
import { isSafeName } from "../boot/profile"
import { RefusedError, UsageError } from "./args"

export const CA_KEY_FILE = "ca.key.pem"
export const CA_CERT_FILE = "ca.cert.pem"
export const KEY_FILE = "key.pem"
export const CERT_FILE = "cert.pem"

/** Roles carried in the subject's OU; the broker's ACL keys on them. */
export type Role = "device" | "operator" | "broker"
/** Operator subjects are "operator:NAME": no device id can contain ':' (isSafeName). */
export const OPERATOR_PREFIX = "operator:"

const DAY_MS = 24 * 3600 * 1000
/** Certificates start a few minutes in the past so a peer clock slightly behind accepts them. */
const BACKDATE_MS = 5 * 60 * 1000
export const DEFAULT_DAYS = { ca: 3650, device: 90, operator: 90, broker: 365 }

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
const subtle = webcrypto.subtle

const ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }

export interface FleetCa {
    dir: string
    certPem: string
    cert: x509.X509Certificate
    key: CryptoKey
}

export interface IssuedCertificate {
    certPem: string
    /** Hex serial number as it appears in the certificate. */
    serial: string
    notBefore: string
    notAfter: string
}

/** Validity overrides; tests use them to make expired or not-yet-valid certificates. */
export interface Validity {
    days?: number
    notBefore?: Date
    notAfter?: Date
}

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

function pem(label: string, der: ArrayBuffer): string {
    const b64 = Buffer.from(der).toString("base64")
    const lines = b64.match(/.{1,64}/g) ?? []
    return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`
}

function pemBody(text: string, label: string): Buffer {
    const begin = `-----BEGIN ${label}-----`
    const end = `-----END ${label}-----`
    const i = text.indexOf(begin)
    const j = text.indexOf(end)
    if (i < 0 || j < i) throw new UsageError(`not a PEM ${label}`)
    return Buffer.from(text.slice(i + begin.length, j).replace(/\s+/g, ""), "base64")
}

/** Writes a new file; refuses to replace one (open flag 'wx'). Keys get mode 0600. */
export function writeNewFile(path: string, data: string, secret: boolean): void {
    try {
        writeFileSync(path, data, { flag: "wx", mode: secret ? 0o600 : 0o644 })
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST")
            throw new RefusedError(`${path} exists; keys and certificates are never overwritten`)
        throw new UsageError(`cannot write ${path}: ${(err as Error).message}`)
    }
}

function readText(path: string): string {
    try {
        return readFileSync(path, "utf8")
    } catch {
        throw new UsageError(`cannot read ${path}`)
    }
}

/** A random positive 128-bit serial (RFC 5280 section 4.1.2.2: at most 20 octets). */
function randomSerial(): string {
    const bytes = randomBytes(16)
    bytes[0] = (bytes[0] & 0x7f) | 0x01
    return bytes.toString("hex")
}

function validityOf(
    v: Validity | undefined,
    defaultDays: number
): { notBefore: Date; notAfter: Date } {
    const now = Date.now()
    const notBefore = v?.notBefore ?? new Date(now - BACKDATE_MS)
    const days = v?.days ?? defaultDays
    if (!Number.isInteger(days) || days < 1 || days > 36500)
        throw new UsageError("validity must be 1 to 36500 days")
    const notAfter = v?.notAfter ?? new Date(now + days * DAY_MS)
    return { notBefore, notAfter }
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
    return (await subtle.generateKey(ECDSA, true, [
        "sign",
        "verify",
    ])) as CryptoKeyPair
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
    return pem("PRIVATE KEY", await subtle.exportKey("pkcs8", key))
}

/** Imports a 65-byte uncompressed SEC1 P-256 public key; UsageError when it is not on the curve. */
export async function importRawPublicKey(raw: Buffer): Promise<CryptoKey> {
    if (raw.length !== 65 || raw[0] !== 0x04)
        throw new UsageError("public key: not uncompressed P-256")
    try {
        return await subtle.importKey("raw", raw, ECDSA, true, ["verify"])
    } catch {
        throw new UsageError("public key: not a point of P-256")
    }
}

/**
 * Creates a fleet CA in `dir` (created if needed): ca.key.pem (0600) and ca.cert.pem.
 * RefusedError when a CA key is already there: a fleet CA is never replaced by accident.
 */
export async function createCa(
    dir: string,
    name: string,
    validity?: Validity
): Promise<IssuedCertificate> {
    if (name.length < 1 || name.length > 64 || /[,=+<>#;"\\]/.test(name))
        throw new UsageError("CA name must be 1-64 characters without , = + < > # ; \" \\")
    mkdirSync(dir, { recursive: true })
    if (existsSync(join(dir, CA_KEY_FILE)))
        throw new RefusedError(`${join(dir, CA_KEY_FILE)} exists; a fleet CA is never overwritten`)

    const keys = await generateKeyPair()
    const { notBefore, notAfter } = validityOf(validity, DEFAULT_DAYS.ca)
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: randomSerial(),
        name: `CN=${name}, O=Bulwark fleet`,
        keys,
        signingAlgorithm: ECDSA,
        notBefore,
        notAfter,
        extensions: [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(
                x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
                true
            ),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
    })

    writeNewFile(join(dir, CA_KEY_FILE), await privateKeyPem(keys.privateKey), true)
    const certPem = cert.toString("pem") + "\n"
    writeNewFile(join(dir, CA_CERT_FILE), certPem, false)
    return issuedOf(cert, certPem)
}

/** Loads the CA of `dir`; UsageError when its files are missing or unreadable. */
export async function loadCa(dir: string): Promise<FleetCa> {
    const certPem = readText(join(dir, CA_CERT_FILE))
    const keyPem = readText(join(dir, CA_KEY_FILE))
    let cert: x509.X509Certificate
    let key: CryptoKey
    try {
        cert = new x509.X509Certificate(certPem)
        key = await subtle.importKey(
            "pkcs8",
            pemBody(keyPem, "PRIVATE KEY"),
            ECDSA,
            false,
            ["sign"]
        )
    } catch (err) {
        if (err instanceof UsageError) throw err
        throw new UsageError(`${dir}: not a fleet CA (${(err as Error).message})`)
    }
    return { dir, certPem, cert, key }
}

function issuedOf(cert: x509.X509Certificate, certPem: string): IssuedCertificate {
    return {
        certPem,
        serial: cert.serialNumber,
        notBefore: cert.notBefore.toISOString(),
        notAfter: cert.notAfter.toISOString(),
    }
}

async function issue(
    ca: FleetCa,
    subject: string,
    publicKey: CryptoKey,
    extensions: x509.Extension[],
    validity: Validity | undefined,
    defaultDays: number
): Promise<IssuedCertificate> {
    const { notBefore, notAfter } = validityOf(validity, defaultDays)
    const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerial(),
        subject,
        issuer: ca.cert.subject,
        publicKey,
        signingKey: ca.key,
        signingAlgorithm: ECDSA,
        notBefore,
        notAfter,
        extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            await x509.SubjectKeyIdentifierExtension.create(publicKey),
            await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
            ...extensions,
        ],
    })
    return issuedOf(cert, cert.toString("pem") + "\n")
}

/**
 * Issues a device certificate for a key the device generated in its secure element: only
 * the public key reaches the CA. Subject "CN=<deviceId>, OU=device", client auth only.
 */
export async function issueDeviceCertificate(
    ca: FleetCa,
    deviceId: string,
    publicKey: Buffer,
    validity?: Validity
): Promise<IssuedCertificate> {
    if (!isSafeName(deviceId)) throw new UsageError("device id must be 1-64 of a-z, 0-9, '-', '.'")
    const key = await importRawPublicKey(publicKey)
    return issue(
        ca,
        `CN=${deviceId}, OU=device`,
        key,
        [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        ],
        validity,
        DEFAULT_DAYS.device
    )
}

/** Host names or IP literals; each becomes a SAN dNSName or iPAddress, nothing implicit. */
function sanOf(hosts: string[]): x509.SubjectAlternativeNameExtension {
    if (hosts.length === 0) throw new UsageError("at least one --host is needed")
    const names = hosts.map((h) => {
        if (isIP(h)) return { type: "ip" as const, value: h }
        if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.?)*$/.test(h) || h.length > 253)
            throw new UsageError(`not a host name: ${h}`)
        return { type: "dns" as const, value: h.toLowerCase() }
    })
    return new x509.SubjectAlternativeNameExtension(names, false)
}

/** A key pair made here for a broker or operator: both keep their key in `outDir` (0600). */
async function issueWithNewKey(
    ca: FleetCa,
    outDir: string,
    subject: string,
    extensions: x509.Extension[],
    validity: Validity | undefined,
    defaultDays: number
): Promise<IssuedCertificate> {
    mkdirSync(outDir, { recursive: true })
    for (const f of [KEY_FILE, CERT_FILE])
        if (existsSync(join(outDir, f)))
            throw new RefusedError(
                `${join(outDir, f)} exists; keys and certificates are never overwritten`
            )
    const keys = await generateKeyPair()
    const issued = await issue(ca, subject, keys.publicKey, extensions, validity, defaultDays)
    writeNewFile(join(outDir, KEY_FILE), await privateKeyPem(keys.privateKey), true)
    writeNewFile(join(outDir, CERT_FILE), issued.certPem, false)
    writeNewFile(join(outDir, CA_CERT_FILE), ca.certPem, false)
    return issued
}

/** Broker certificate: server auth, SAN = `hosts`, subject OU=broker. Writes key, cert, CA. */
export async function issueBrokerCertificate(
    ca: FleetCa,
    hosts: string[],
    outDir: string,
    validity?: Validity
): Promise<IssuedCertificate> {
    const san = sanOf(hosts)
    return issueWithNewKey(
        ca,
        outDir,
        `CN=${hosts[0].toLowerCase()}, OU=broker`,
        [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
            san,
        ],
        validity,
        DEFAULT_DAYS.broker
    )
}

/** Operator certificate: client auth, subject "CN=operator:<name>, OU=operator". */
export async function issueOperatorCertificate(
    ca: FleetCa,
    name: string,
    outDir: string,
    validity?: Validity
): Promise<IssuedCertificate> {
    if (!isSafeName(name)) throw new UsageError("operator name must be 1-64 of a-z, 0-9, '-', '.'")
    return issueWithNewKey(
        ca,
        outDir,
        `CN=${OPERATOR_PREFIX}${name}, OU=operator`,
        [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        ],
        validity,
        DEFAULT_DAYS.operator
    )
}

/** SHA-256 fingerprint (hex) of a PEM certificate, as Node computes it. */
export function fingerprint(certPem: string): string {
    return new NodeX509(certPem).fingerprint256.replace(/:/g, "").toLowerCase()
}
