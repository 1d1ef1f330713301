/**
 * The few X.509 facts a device checks in a certificate it is given (RFC 5280 section 4.1;
 * GP-TM-21, GP-TM-35): the issuer and subject names, notBefore, the P-256 key of the
 * SubjectPublicKeyInfo and the issuer's ECDSA signature over the TBSCertificate. A minimal
 * DER walk (X.690 section 8/10: definite lengths, one-byte tags) that checks every length
 * against its parent before use; anything it does not expect is a CertificateError. Also
 * strict PEM <-> DER (RFC 7468) with a hand-written base64 (RFC 4648), for the portable subset.
 */

import { equalBytes } from "../boot/bytes"
import { CheckError } from "../hal/errors"

/** One check, "certificate": the bytes are not a certificate this walk accepts. */
export class CertificateError extends CheckError {
    constructor(message: string) {
        super("certificate", "certificate: " + message)
        this.name = "CertificateError"
    }
}

/** What a device reads from a certificate; the Buffers are slices of the DER. */
export interface CertificateFields {
    /** The whole TBSCertificate TLV: what the issuer signed. */
    tbs: Buffer
    serial: Buffer
    /** The issuer Name TLV, to compare byte for byte with the CA's subject. */
    issuer: Buffer
    /** The subject Name TLV. */
    subject: Buffer
    /** notBefore as "YYYYMMDDHHMMSSZ" (UTCTime widened to four-digit years). */
    notBefore: string
    /** The 65-byte uncompressed P-256 point of the SubjectPublicKeyInfo. */
    publicKey: Buffer
    /** The issuer's ECDSA signature as r || s (32 bytes each). */
    signature: Buffer
}

const TAG_SEQUENCE = 0x30
const TAG_SET = 0x31
const TAG_INTEGER = 0x02
const TAG_BIT_STRING = 0x03
const TAG_OID = 0x06
const TAG_UTC_TIME = 0x17
const TAG_GENERALIZED_TIME = 0x18
const TAG_VERSION = 0xa0
/** 1.2.840.10045.2.1 id-ecPublicKey */
const OID_EC_PUBLIC_KEY = "2a8648ce3d0201"
/** 1.2.840.10045.3.1.7 prime256v1 */
const OID_P256 = "2a8648ce3d030107"
/** 1.2.840.10045.4.3.2 ecdsa-with-SHA256 */
const OID_ECDSA_SHA256 = "2a8648ce3d040302"
/** 2.5.4.3 commonName */
const OID_COMMON_NAME = "550403"
/** Larger certificates are refused before the walk (a device certificate is ~500 bytes). */
export const MAX_CERTIFICATE_DER = 2048

interface Tlv {
    tag: number
    start: number
    body: number
    end: number
}

function fail(message: string): CertificateError {
    return new CertificateError(message)
}

/** The TLV at `at`, which must end by `limit`; only definite lengths of up to two bytes. */
function readTlv(der: Buffer, at: number, limit: number): Tlv {
    if (at + 2 > limit) throw fail("truncated")
    const tag = der[at]
    if ((tag & 0x1f) === 0x1f) throw fail("tag")
    let length = der[at + 1]
    let body = at + 2
    if (length >= 0x80) {
        const n = length - 0x80
        if (n < 1 || n > 2 || body + n > limit) throw fail("length")
        length = n === 1 ? der[body] : der[body] * 256 + der[body + 1]
        // DER: the shortest form only.
        if ((n === 1 && length < 0x80) || (n === 2 && length < 0x100)) throw fail("length")
        body += n
    }
    if (body + length > limit) throw fail("length")
    return { tag: tag, start: at, body: body, end: body + length }
}

function expectTlv(der: Buffer, at: number, limit: number, tag: number, what: string): Tlv {
    const t = readTlv(der, at, limit)
    if (t.tag !== tag) throw fail(what)
    return t
}

function oidHex(der: Buffer, t: Tlv): string {
    return der.slice(t.body, t.end).toString("hex")
}

function isDigits(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c < 48 || c > 57) return false
    }
    return true
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ, as YYYYMMDDHHMMSSZ. */
function timeText(der: Buffer, t: Tlv): string {
    const text = der.slice(t.body, t.end).toString()
    const digits = text.slice(0, text.length - 1)
    if (text.charAt(text.length - 1) !== "Z" || !isDigits(digits)) throw fail("time")
    if (t.tag === TAG_UTC_TIME && text.length === 13)
        return ((text.charCodeAt(0) - 48) * 10 + text.charCodeAt(1) - 48 < 50 ? "20" : "19") + text
    if (t.tag === TAG_GENERALIZED_TIME && text.length === 15) return text
    throw fail("time")
}

/** A DER INTEGER of an ECDSA signature as 32 big-endian bytes. */
function scalar(der: Buffer, t: Tlv): Buffer {
    let from = t.body
    while (from < t.end - 1 && der[from] === 0) from++
    const length = t.end - from
    if (length < 1 || length > 32) throw fail("signature")
    const out = Buffer.alloc(32)
    for (let i = 0; i < length; i++) out[32 - length + i] = der[from + i]
    return out
}

/** SubjectPublicKeyInfo: id-ecPublicKey on P-256, an uncompressed 65-byte point. */
function p256Key(der: Buffer, spki: Tlv): Buffer {
    const alg = expectTlv(der, spki.body, spki.end, TAG_SEQUENCE, "key algorithm")
    const kind = expectTlv(der, alg.body, alg.end, TAG_OID, "key algorithm")
    const curve = expectTlv(der, kind.end, alg.end, TAG_OID, "key curve")
    if (oidHex(der, kind) !== OID_EC_PUBLIC_KEY || oidHex(der, curve) !== OID_P256)
        throw fail("key algorithm")
    const bits = expectTlv(der, alg.end, spki.end, TAG_BIT_STRING, "key")
    if (bits.end !== spki.end || bits.end - bits.body !== 66) throw fail("key")
    if (der[bits.body] !== 0 || der[bits.body + 1] !== 4) throw fail("key")
    return der.slice(bits.body + 1, bits.end)
}

/** signatureAlgorithm ecdsa-with-SHA256 and the signatureValue, as r || s. */
function ecdsaSignature(der: Buffer, at: number, limit: number): Buffer {
    const alg = expectTlv(der, at, limit, TAG_SEQUENCE, "signature algorithm")
    const oid = expectTlv(der, alg.body, alg.end, TAG_OID, "signature algorithm")
    if (oidHex(der, oid) !== OID_ECDSA_SHA256) throw fail("signature algorithm")
    const bits = expectTlv(der, alg.end, limit, TAG_BIT_STRING, "signature")
    if (bits.end !== limit || bits.end - bits.body < 1 || der[bits.body] !== 0)
        throw fail("signature")
    const seq = expectTlv(der, bits.body + 1, bits.end, TAG_SEQUENCE, "signature")
    if (seq.end !== bits.end) throw fail("signature")
    const r = expectTlv(der, seq.body, seq.end, TAG_INTEGER, "signature")
    const s = expectTlv(der, r.end, seq.end, TAG_INTEGER, "signature")
    if (s.end !== seq.end) throw fail("signature")
    const out = Buffer.alloc(64)
    out.set(scalar(der, r), 0)
    out.set(scalar(der, s), 32)
    return out
}

/**
 * Walks a DER certificate: Certificate, TBSCertificate (version, serial, signature,
 * issuer, validity, subject, SubjectPublicKeyInfo; the extensions are not read), the
 * signature algorithm and value. Throws CertificateError for anything else.
 */
export function parseCertificate(der: Buffer): CertificateFields {
    if (der.length < 2 || der.length > MAX_CERTIFICATE_DER) throw fail("size")
    const cert = expectTlv(der, 0, der.length, TAG_SEQUENCE, "outer")
    if (cert.end !== der.length) throw fail("trailing bytes")
    const tbs = expectTlv(der, cert.body, cert.end, TAG_SEQUENCE, "tbs")
    let t = readTlv(der, tbs.body, tbs.end)
    if (t.tag === TAG_VERSION) t = readTlv(der, t.end, tbs.end)
    if (t.tag !== TAG_INTEGER) throw fail("serial")
    const serial = der.slice(t.body, t.end)
    const innerAlg = expectTlv(der, t.end, tbs.end, TAG_SEQUENCE, "tbs signature")
    const issuer = expectTlv(der, innerAlg.end, tbs.end, TAG_SEQUENCE, "issuer")
    const validity = expectTlv(der, issuer.end, tbs.end, TAG_SEQUENCE, "validity")
    const notBefore = readTlv(der, validity.body, validity.end)
    const subject = expectTlv(der, validity.end, tbs.end, TAG_SEQUENCE, "subject")
    const spki = expectTlv(der, subject.end, tbs.end, TAG_SEQUENCE, "key")
    return {
        tbs: der.slice(tbs.start, tbs.end),
        serial: serial,
        issuer: der.slice(issuer.start, issuer.end),
        subject: der.slice(subject.start, subject.end),
        notBefore: timeText(der, notBefore),
        publicKey: p256Key(der, spki),
        signature: ecdsaSignature(der, tbs.end, cert.end),
    }
}

/**
 * The single commonName of a Name TLV (SEQUENCE OF SET OF AttributeTypeAndValue), or null
 * when there is none or more than one. Only UTF8String, PrintableString and IA5String.
 */
export function commonName(name: Buffer): string | null {
    const outer = readTlv(name, 0, name.length)
    if (outer.tag !== TAG_SEQUENCE || outer.end !== name.length) return null
    let found: string | null = null
    let count = 0
    for (let p = outer.body; p < outer.end; ) {
        const set = expectTlv(name, p, outer.end, TAG_SET, "name")
        for (let q = set.body; q < set.end; ) {
            const atv = expectTlv(name, q, set.end, TAG_SEQUENCE, "name")
            const oid = expectTlv(name, atv.body, atv.end, TAG_OID, "name")
            const value = readTlv(name, oid.end, atv.end)
            if (oidHex(name, oid) === OID_COMMON_NAME) {
                count++
                const ok = value.tag === 0x0c || value.tag === 0x13 || value.tag === 0x16
                found = ok ? name.slice(value.body, value.end).toString() : null
            }
            q = atv.end
        }
        p = set.end
    }
    return count === 1 ? found : null
}

/** True when both names are the same DER bytes (RFC 5280 section 7.1 allows no less here). */
export function sameName(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && equalBytes(a, b)
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
const PEM_END = "-----END CERTIFICATE-----"

function base64Decode(text: string): Buffer {
    if (text.length % 4 !== 0) throw fail("pem")
    let pad = 0
    if (text.length > 0 && text.charAt(text.length - 1) === "=") pad++
    if (text.length > 1 && text.charAt(text.length - 2) === "=") pad++
    const out = Buffer.alloc((text.length / 4) * 3 - pad)
    let o = 0
    for (let i = 0; i < text.length; i += 4) {
        let acc = 0
        for (let j = 0; j < 4; j++) {
            const c = text.charAt(i + j)
            const v = c === "=" && i + j >= text.length - pad ? 0 : BASE64.indexOf(c)
            if (v < 0) throw fail("pem")
            acc = acc * 64 + v
        }
        const bytes = [Math.floor(acc / 65536) & 0xff, Math.floor(acc / 256) & 0xff, acc & 0xff]
        for (let k = 0; k < 3 && o < out.length; k++) out[o++] = bytes[k]
    }
    return out
}

/** The DER of a PEM holding one certificate and nothing else (lines of base64 between). */
export function pemToDer(pem: string): Buffer {
    if (pem.length > 4 * MAX_CERTIFICATE_DER) throw fail("pem")
    const begin = pem.indexOf(PEM_BEGIN)
    const end = pem.indexOf(PEM_END)
    if (begin !== 0 || end < 0) throw fail("pem")
    const tail = pem.slice(end + PEM_END.length)
    if (tail !== "" && tail !== "\n" && tail !== "\r\n") throw fail("pem")
    let body = ""
    const inner = pem.slice(PEM_BEGIN.length, end)
    for (let i = 0; i < inner.length; i++) {
        const c = inner.charAt(i)
        if (c !== "\n" && c !== "\r") body = body + c
    }
    return base64Decode(body)
}

/** PEM text of a DER certificate, 64 base64 characters a line. */
export function derToPem(der: Buffer): string {
    let body = ""
    let line = 0
    for (let i = 0; i < der.length; i += 3) {
        const n = der.length - i
        const b1 = n > 1 ? der[i + 1] : 0
        const b2 = n > 2 ? der[i + 2] : 0
        const acc = der[i] * 65536 + b1 * 256 + b2
        let quad = BASE64.charAt(Math.floor(acc / 262144) & 63) +
            BASE64.charAt(Math.floor(acc / 4096) & 63)
        quad = quad + (n > 1 ? BASE64.charAt(Math.floor(acc / 64) & 63) : "=")
        quad = quad + (n > 2 ? BASE64.charAt(acc & 63) : "=")
        body = body + quad
        line += 4
        if (line === 64) {
            body = body + "\n"
            line = 0
        }
    }
    if (line > 0) body = body + "\n"
    return PEM_BEGIN + "\n" + body + PEM_END + "\n"
}
