/**
 * Certificate revocation lists of the fleet CA (RFC 5280 section 5; GP-TM-21, GP-TM-39,
 * GP-TM-40): an X.509 v2 CRL signed by the CA key, listing every serial of the registry's
 * `revokedSerials`, with a CRL number that rises by one per CRL and the CA's key identifier,
 * so brokers other than the embedded one (Mosquitto's `crlfile`) refuse revoked devices and
 * operators too. `bulwark ca crl` writes it (publishCrl); signCrl builds it from the ASN.1
 * schema of @peculiar/asn1-x509, serialized by @peculiar/asn1-schema.
 */

import "reflect-metadata"
import { webcrypto } from "node:crypto"
import { chmodSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { AsnConvert, AsnIntegerBigIntConverter } from "@peculiar/asn1-schema"
import { ecdsaWithSHA256 } from "@peculiar/asn1-ecc"
import {
    CertificateList,
    CRLNumber,
    Extension,
    Name,
    RevokedCertificate,
    TBSCertList,
    Time,
    Version,
} from "@peculiar/asn1-x509"
import * as x509 from "@peculiar/x509"
import { UsageError } from "./args"
import { FleetCa, loadCa } from "./ca"
import { REGISTRY_FILE, Registry, updateRegistry, writeRegistry } from "./provision"

/** RFC 5280 section 5.2.3, cRLNumber. */
export const CRL_NUMBER_OID = "2.5.29.20"
/** Default span from thisUpdate to nextUpdate: the CRL must be re-published within it. */
export const DEFAULT_CRL_DAYS = 7
export const MAX_CRL_DAYS = 365

const DAY_MS = 24 * 3600 * 1000
/** thisUpdate is a few minutes in the past so a broker clock slightly behind accepts it. */
const BACKDATE_MS = 5 * 60 * 1000
const ECDSA = { name: "ECDSA", hash: "SHA-256" }

export interface CrlEntry {
    /** Hex serial number, as the registry keeps it. */
    serial: string
    revokedAt: Date
}

export interface CrlParams {
    crlNumber: number
    thisUpdate: Date
    nextUpdate: Date
    entries: CrlEntry[]
}

export interface CrlResult {
    ok: true
    out: string
    revoked: number
    crlNumber: number
    thisUpdate: string
    nextUpdate: string
}

/** RFC 5280 section 5.1.2.4: UTCTime through 2049, GeneralizedTime after; whole seconds. */
function crlTime(date: Date): Time {
    const at = wholeSeconds(date)
    const year = at.getUTCFullYear()
    return new Time(year >= 1950 && year < 2050 ? { utcTime: at } : { generalTime: at })
}

/** `date` truncated to whole seconds, as the CRL encodes it. */
function wholeSeconds(date: Date): Date {
    return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

/** The non-critical cRLNumber extension carrying `value`. */
export function crlNumberExtension(value: number): x509.Extension {
    if (!Number.isSafeInteger(value) || value < 0) throw new UsageError("CRL number out of range")
    return new x509.Extension(CRL_NUMBER_OID, false, AsnConvert.serialize(new CRLNumber(value)))
}

/** Reads the cRLNumber extension of `crl`; null when it has none or it is not a small INTEGER. */
export function crlNumberOf(crl: x509.X509Crl): number | null {
    const ext = crl.getExtension(CRL_NUMBER_OID)
    if (!ext) return null
    const v = new Uint8Array(ext.value)
    if (v.length < 3 || v[0] !== 0x02 || v[1] !== v.length - 2 || v[1] > 7) return null
    let n = 0
    for (let i = 2; i < v.length; i++) n = n * 256 + v[i]
    return n
}

/**
 * A serial in the one form the CRL, the registry and the embedded broker compare: lower-case
 * hex without leading zeros ("0A3F" and "a3f" are one certificate). UsageError for anything
 * that is not 1 to 20 octets of hex (a hand-edited registry), naming where it came from.
 */
export function canonicalSerial(serial: string, where = "registry"): string {
    const canonical = /^[0-9a-fA-F]+$/.test(serial) ? serial.toLowerCase().replace(/^0+/, "") : ""
    if (canonical.length === 0 || canonical.length > 40)
        throw new UsageError(
            `${where}: revoked serial ${JSON.stringify(serial)} is not a hex serial number ` +
                "(1 to 20 octets, not zero)"
        )
    return canonical
}

/** The CertificateSerialNumber of a canonical hex serial: a positive INTEGER's octets. */
function serialNumber(serial: string): ArrayBuffer {
    return AsnIntegerBigIntConverter.toASN(BigInt("0x" + serial)).valueBlock.valueHex
}

/**
 * Signs a v2 CRL with the CA key; returns it as PEM. Duplicate serials are listed once.
 * Built from @peculiar/asn1-x509's CertificateList schema rather than by @peculiar/x509's
 * X509CrlGenerator, which labels the PEM "CRL" (OpenSSL will not load it) and gives every
 * entry an empty crlEntryExtensions, which RFC 5280 forbids (Extensions is SIZE (1..MAX));
 * entries here leave crlEntryExtensions out, carrying only serial and date.
 */
export async function signCrl(ca: FleetCa, params: CrlParams): Promise<string> {
    const seen = new Set<string>()
    const revoked: RevokedCertificate[] = []
    for (const e of params.entries) {
        const serial = canonicalSerial(e.serial)
        if (seen.has(serial)) continue
        seen.add(serial)
        revoked.push(
            new RevokedCertificate({
                userCertificate: serialNumber(serial),
                revocationDate: crlTime(e.revokedAt),
            })
        )
    }
    const aki = await x509.AuthorityKeyIdentifierExtension.create(ca.cert)
    const extensions = [aki, crlNumberExtension(params.crlNumber)]
    const tbsCertList = new TBSCertList({
        version: Version.v2,
        signature: ecdsaWithSHA256,
        issuer: AsnConvert.parse(ca.cert.subjectName.toArrayBuffer(), Name),
        thisUpdate: crlTime(params.thisUpdate),
        nextUpdate: crlTime(params.nextUpdate),
        revokedCertificates: revoked.length > 0 ? revoked : undefined,
        crlExtensions: extensions.map((x) => AsnConvert.parse(x.rawData, Extension)),
    })
    const tbs = AsnConvert.serialize(tbsCertList)
    const raw = await webcrypto.subtle.sign(ECDSA, ca.key, tbs)
    const signature = new x509.AsnEcSignatureFormatter().toAsnSignature(ca.key.algorithm, raw)
    if (!signature) throw new Error(`CA key is not ECDSA: ${ca.key.algorithm.name}`)
    const crl = new CertificateList({ tbsCertList, signatureAlgorithm: ecdsaWithSHA256, signature })
    // RFC 7468 label "X509 CRL", the one OpenSSL (and so Mosquitto) reads
    return x509.PemConverter.encode(AsnConvert.serialize(crl), "X509 CRL") + "\n"
}

function checkDays(days: number): number {
    if (!Number.isInteger(days) || days < 1 || days > MAX_CRL_DAYS)
        throw new UsageError(`--days must be 1 to ${MAX_CRL_DAYS}`)
    return days
}

/**
 * The registry's revoked serials with the time each was first revoked (`now` if unknown,
 * recorded so the next CRL gives the same date). UsageError naming `where` for a serial that
 * is not hex or a date that is not one.
 */
function entriesOf(registry: Registry, now: Date, where: string): CrlEntry[] {
    const at = registry.revokedAt ?? {}
    registry.revokedAt = at
    return registry.revokedSerials.map((serial) => {
        canonicalSerial(serial, where)
        const key = serial.toLowerCase()
        const known = at[key]
        const date = known === undefined ? now : new Date(known)
        if (Number.isNaN(date.getTime()))
            throw new UsageError(`${where}: revocation date of ${serial} is not a date`)
        if (known === undefined) at[key] = now.toISOString()
        return { serial, revokedAt: date }
    })
}

/** Writes `text` to `path`.tmp (mode 0644), returning the temp path; UsageError if it cannot. */
function writeTemp(path: string, text: string): string {
    const tmp = path + ".tmp"
    try {
        rmSync(tmp, { force: true })
        writeFileSync(tmp, text, { flag: "wx", mode: 0o644 })
        chmodSync(tmp, 0o644)
        return tmp
    } catch (err) {
        rmSync(tmp, { force: true })
        throw new UsageError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code}`)
    }
}

/**
 * Signs the next CRL of the fleet CA in `caDir` and writes it to `out`. Under the registry
 * lock: the CRL number is the last one plus one. Bad `days` or a bad registry entry change
 * nothing; once the CRL is in a temp file next to `out`, the registry keeps the new number
 * before the rename, so a number is never given to two different CRLs (a failed rename
 * leaves a gap, which RFC 5280 allows). Serials without a recorded revocation time get the
 * current one, kept too.
 */
export async function publishCrl(
    caDir: string,
    out: string,
    days = DEFAULT_CRL_DAYS
): Promise<CrlResult> {
    checkDays(days)
    const ca = await loadCa(caDir)
    return updateRegistry(caDir, async (registry) => {
        const now = new Date()
        const crlNumber = (registry.crlNumber ?? 0) + 1
        const thisUpdate = wholeSeconds(new Date(now.getTime() - BACKDATE_MS))
        const nextUpdate = wholeSeconds(new Date(now.getTime() + days * DAY_MS))
        const entries = entriesOf(registry, now, join(caDir, REGISTRY_FILE))

        const pem = await signCrl(ca, { crlNumber, thisUpdate, nextUpdate, entries })
        const tmp = writeTemp(out, pem)
        registry.crlNumber = crlNumber
        try {
            writeRegistry(caDir, registry)
            renameSync(tmp, out)
        } catch (err) {
            rmSync(tmp, { force: true })
            throw new UsageError(`cannot write ${out}: ${(err as NodeJS.ErrnoException).code}`)
        }
        return {
            ok: true as const,
            out,
            revoked: new Set(entries.map((e) => canonicalSerial(e.serial))).size,
            crlNumber,
            thisUpdate: thisUpdate.toISOString(),
            nextUpdate: nextUpdate.toISOString(),
        }
    })
}
