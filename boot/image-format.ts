/**
 * The Bulwark image format, version 1 (docs/image-format.md; GP-TM-04, GP-TM-06): constants,
 * header and trailer encoding and decoding, semantic versions. One implementation shared by
 * the signer, the boot stub and the update agent. Every length is checked before it is used
 * and every field this code does not fully understand is refused with an ImageError.
 */

import { allZero, concatBytes, readU16, readU32, writeU16, writeU32 } from "./bytes"
import { parseDecimal } from "./decimal"
import { isSafeName } from "./profile"
import { OTP_COUNTER_MAX } from "../hal/otp"
import { SignatureAlgorithm } from "../hal/crypto"
import { CheckError } from "../hal/errors"
import { algorithmFromId, algorithmId, publicKeyLength, PublicKeyEntry } from "./anchor"

/**
 * What one board says about one signature of a trailer: "passed" or "failed" when it could
 * verify the algorithm, "unverifiable" when its crypto.verifiers() lacks it (never "passed").
 */
export type SignatureVerdict = "passed" | "failed" | "unverifiable"

export interface SignatureReport {
    algorithm: SignatureAlgorithm
    verdict: SignatureVerdict
    /** Whether the signature policy required this algorithm for this identity. */
    required: boolean
}

/** A refused image; `check` names the failed check (table in docs/image-format.md). */
export class ImageError extends CheckError {
    /** The per-signature verdicts when the refusal came after the signatures were checked. */
    signatures: SignatureReport[] | null
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "ImageError"
        this.signatures = null
    }
}

/** "BWIM": first four bytes of every image. */
export const IMAGE_MAGIC = Buffer.from("BWIM")
/** "BWTR": first four bytes of the trailer. */
export const TRAILER_MAGIC = Buffer.from("BWTR")
export const FORMAT_VERSION = 1
export const HEADER_SIZE = 96
export const DEVICE_CLASS_FIELD = 64
/** Image types; only the application exists in format version 1. */
export const IMAGE_TYPE_APP = 1
/** Trailer head: magic (4) and total trailer length (4). */
export const TRAILER_HEAD_SIZE = 8
/** Entry head: type (u16) and value length (u16). */
export const ENTRY_HEAD_SIZE = 4
/** Bounds the trailer read: room for two keys and two signatures, hybrid SLH-DSA included. */
export const TRAILER_MAX = 16384
export const DIGEST_SIZE = 32
/** Bytes hashed per read while verifying; also the unit in which payloads are returned. */
export const CHUNK_SIZE = 4096

export const ENTRY_DIGEST = 1
export const ENTRY_KEY_DIGEST = 2
export const ENTRY_PUBLIC_KEY = 3
export const ENTRY_SIGNATURE = 4

/** Domain-separation label that starts every signed message (16 ASCII bytes). */
export const SIGNED_LABEL = Buffer.from("bulwark-image-v1")

const MAX_VERSION_PART = 65535

export interface ImageHeader {
    formatVersion: number
    imageType: number
    deviceClass: string
    version: string
    securityCounter: number
    payloadSize: number
    headerSize: number
}

/** What a signer puts into a header; formatVersion and headerSize are fixed. */
export interface HeaderFields {
    imageType: number
    deviceClass: string
    version: string
    securityCounter: number
    payloadSize: number
}

export interface TrailerEntry {
    type: number
    value: Buffer
}

export interface SignatureEntry {
    algorithm: SignatureAlgorithm
    signature: Buffer
}

export interface ImageTrailer {
    /** Total trailer length, head included. */
    length: number
    digest: Buffer
    keyDigest: Buffer
    publicKeys: PublicKeyEntry[]
    signatures: SignatureEntry[]
    /** Every entry in the order it appears. */
    entries: TrailerEntry[]
}

export interface SemVer {
    major: number
    minor: number
    patch: number
}

function parseVersionPart(text: string): number {
    return parseDecimal(text, 5, MAX_VERSION_PART)
}

/** Parses "X.Y.Z", each part 0..65535 in decimal without leading zeros; ImageError "version". */
export function parseVersion(text: string): SemVer {
    if (typeof text !== "string") throw new ImageError("version", "version must be X.Y.Z")
    const parts = text.split(".")
    if (parts.length !== 3) throw new ImageError("version", "version must be X.Y.Z")
    const major = parseVersionPart(parts[0])
    const minor = parseVersionPart(parts[1])
    const patch = parseVersionPart(parts[2])
    if (major < 0 || minor < 0 || patch < 0)
        throw new ImageError("version", "each version part must be 0 to 65535")
    return { major: major, minor: minor, patch: patch }
}

export function formatVersion(v: SemVer): string {
    return v.major + "." + v.minor + "." + v.patch
}

/** -1, 0 or 1 as version `a` is below, equal to or above `b`; ImageError "version" if malformed. */
export function compareVersions(a: string, b: string): number {
    const x = parseVersion(a)
    const y = parseVersion(b)
    if (x.major !== y.major) return x.major < y.major ? -1 : 1
    if (x.minor !== y.minor) return x.minor < y.minor ? -1 : 1
    if (x.patch !== y.patch) return x.patch < y.patch ? -1 : 1
    return 0
}

/** The class name ends at the first NUL; every byte after it must be NUL too. */
function decodeDeviceClass(head: Buffer): string {
    const start = 32
    const limit = start + DEVICE_CLASS_FIELD
    let end = limit
    for (let i = start; i < limit; i++) {
        if (head[i] === 0) {
            end = i
            break
        }
    }
    if (!allZero(head, end, limit))
        throw new ImageError("class-name", "device class field is not NUL-padded")
    const name = head.slice(start, end).toString()
    if (!isSafeName(name) || name.length !== end - start)
        throw new ImageError("class-name", "device class must be 1-64 of a-z, 0-9, '-' and '.'")
    return name
}

/**
 * Decodes the fixed 96-byte header (offsets in docs/image-format.md). `head` must hold at
 * least HEADER_SIZE bytes. Checks, in order: magic, format-version, header-size,
 * image-type, flags, reserved, class-name, security-counter.
 */
export function decodeHeader(head: Buffer): ImageHeader {
    if (head.length < HEADER_SIZE) throw new ImageError("truncated", "shorter than a header")
    for (let i = 0; i < 4; i++)
        if (head[i] !== IMAGE_MAGIC[i]) throw new ImageError("magic", "not a Bulwark image")
    const formatVer = readU16(head, 4)
    if (formatVer !== FORMAT_VERSION)
        throw new ImageError("format-version", "unsupported image format version")
    const headerSize = readU16(head, 6)
    if (headerSize !== HEADER_SIZE)
        throw new ImageError("header-size", "header size must be " + HEADER_SIZE)
    const imageType = readU16(head, 8)
    if (imageType !== IMAGE_TYPE_APP) throw new ImageError("image-type", "unknown image type")
    if (readU16(head, 10) !== 0) throw new ImageError("flags", "reserved flags are set")
    if (!allZero(head, 26, 32)) throw new ImageError("reserved", "reserved bytes are set")
    const deviceClass = decodeDeviceClass(head)
    const payloadSize = readU32(head, 12)
    const securityCounter = readU32(head, 16)
    if (securityCounter > OTP_COUNTER_MAX)
        throw new ImageError("security-counter", "security counter above what OTP can hold")
    const version = formatVersion({
        major: readU16(head, 20),
        minor: readU16(head, 22),
        patch: readU16(head, 24),
    })
    return {
        formatVersion: formatVer,
        imageType: imageType,
        deviceClass: deviceClass,
        version: version,
        securityCounter: securityCounter,
        payloadSize: payloadSize,
        headerSize: headerSize,
    }
}

/** Encodes a header; refuses what decodeHeader would refuse (ImageError naming the field). */
export function encodeHeader(fields: HeaderFields): Buffer {
    if (fields.imageType !== IMAGE_TYPE_APP)
        throw new ImageError("image-type", "unknown image type")
    if (!isSafeName(fields.deviceClass))
        throw new ImageError("class-name", "device class must be 1-64 of a-z, 0-9, '-' and '.'")
    const v = parseVersion(fields.version)
    if (!isCount(fields.securityCounter, OTP_COUNTER_MAX))
        throw new ImageError("security-counter", "security counter must be 0 to " + OTP_COUNTER_MAX)
    if (!isCount(fields.payloadSize, 0xffffffff))
        throw new ImageError("payload-size", "payload size must fit in 32 bits")
    const head = Buffer.alloc(HEADER_SIZE)
    for (let i = 0; i < 4; i++) head[i] = IMAGE_MAGIC[i]
    writeU16(head, 4, FORMAT_VERSION)
    writeU16(head, 6, HEADER_SIZE)
    writeU16(head, 8, fields.imageType)
    writeU32(head, 12, fields.payloadSize)
    writeU32(head, 16, fields.securityCounter)
    writeU16(head, 20, v.major)
    writeU16(head, 22, v.minor)
    writeU16(head, 24, v.patch)
    const name = Buffer.from(fields.deviceClass)
    for (let i = 0; i < name.length; i++) head[32 + i] = name[i]
    return head
}

function isCount(value: number, max: number): boolean {
    return typeof value === "number" && value >= 0 && value <= max && Math.floor(value) === value
}

/** The total trailer length from its 8-byte head; ImageError "trailer-magic"/"trailer-length". */
export function decodeTrailerHead(head: Buffer): number {
    if (head.length < TRAILER_HEAD_SIZE) throw new ImageError("truncated", "no trailer")
    for (let i = 0; i < 4; i++)
        if (head[i] !== TRAILER_MAGIC[i]) throw new ImageError("trailer-magic", "no trailer")
    const length = readU32(head, 4)
    if (length < TRAILER_HEAD_SIZE || length > TRAILER_MAX)
        throw new ImageError("trailer-length", "trailer length out of bounds")
    return length
}

class TrailerBuilder {
    digest: Buffer | null = null
    keyDigest: Buffer | null = null
    publicKeys: PublicKeyEntry[] = []
    signatures: SignatureEntry[] = []
}

function algorithmOf(value: Buffer): SignatureAlgorithm {
    if (value.length < 1) throw new ImageError("entry-length", "entry has no algorithm id")
    const algorithm = algorithmFromId(value[0])
    if (algorithm === null) throw new ImageError("algorithm", "unknown signature algorithm")
    return algorithm
}

function signatureLength(algorithm: SignatureAlgorithm): number {
    if (algorithm === "slh-dsa-sha2-128s") return 7856
    return 64
}

function addEntry(t: TrailerBuilder, type: number, value: Buffer): void {
    if (type === ENTRY_DIGEST || type === ENTRY_KEY_DIGEST) {
        if (value.length !== DIGEST_SIZE) throw new ImageError("entry-length", "digest entry size")
        const seen = type === ENTRY_DIGEST ? t.digest : t.keyDigest
        if (seen !== null) throw new ImageError("entry-duplicate", "entry appears twice")
        if (type === ENTRY_DIGEST) t.digest = value
        else t.keyDigest = value
        return
    }
    if (type === ENTRY_PUBLIC_KEY) {
        const algorithm = algorithmOf(value)
        if (value.length !== 1 + publicKeyLength(algorithm))
            throw new ImageError("entry-length", "public key entry size")
        for (let i = 0; i < t.publicKeys.length; i++)
            if (t.publicKeys[i].algorithm === algorithm)
                throw new ImageError("entry-duplicate", "two public keys of one algorithm")
        t.publicKeys.push({ algorithm: algorithm, key: value.slice(1) })
        return
    }
    if (type === ENTRY_SIGNATURE) {
        const algorithm = algorithmOf(value)
        if (value.length !== 1 + signatureLength(algorithm))
            throw new ImageError("entry-length", "signature entry size")
        for (let i = 0; i < t.signatures.length; i++)
            if (t.signatures[i].algorithm === algorithm)
                throw new ImageError("entry-duplicate", "two signatures of one algorithm")
        t.signatures.push({ algorithm: algorithm, signature: value.slice(1) })
        return
    }
    throw new ImageError("entry-unknown", "unknown trailer entry type")
}

/**
 * Decodes a whole trailer (head included, exactly `decodeTrailerHead` bytes long). Entries
 * must fill it exactly; unknown types and duplicates are refused; digest, key digest, at
 * least one public key and one signature must be present.
 */
export function decodeTrailer(trailer: Buffer): ImageTrailer {
    const length = decodeTrailerHead(trailer)
    if (trailer.length !== length) throw new ImageError("trailer-length", "trailer size mismatch")
    const t = new TrailerBuilder()
    const entries: TrailerEntry[] = []
    let pos = TRAILER_HEAD_SIZE
    while (pos < length) {
        if (length - pos < ENTRY_HEAD_SIZE)
            throw new ImageError("trailer-length", "entry head past the trailer end")
        const type = readU16(trailer, pos)
        const size = readU16(trailer, pos + 2)
        if (size > length - pos - ENTRY_HEAD_SIZE)
            throw new ImageError("trailer-length", "entry value past the trailer end")
        const value = trailer.slice(pos + ENTRY_HEAD_SIZE, pos + ENTRY_HEAD_SIZE + size)
        addEntry(t, type, value)
        entries.push({ type: type, value: value })
        pos = pos + ENTRY_HEAD_SIZE + size
    }
    if (t.digest === null || t.keyDigest === null)
        throw new ImageError("entry-missing", "digest or key digest entry missing")
    if (t.publicKeys.length === 0 || t.signatures.length === 0)
        throw new ImageError("entry-missing", "public key or signature entry missing")
    return {
        length: length,
        digest: t.digest,
        keyDigest: t.keyDigest,
        publicKeys: t.publicKeys,
        signatures: t.signatures,
        entries: entries,
    }
}

/** One trailer entry: type, length, value. */
export function encodeEntry(type: number, value: Buffer): Buffer {
    if (value.length > 0xffff) throw new ImageError("entry-length", "entry value too long")
    const head = Buffer.alloc(ENTRY_HEAD_SIZE)
    writeU16(head, 0, type)
    writeU16(head, 2, value.length)
    return concatBytes([head, value])
}

/** The value of a public-key or signature entry: algorithm id, then the bytes. */
export function algorithmValue(algorithm: SignatureAlgorithm, bytes: Buffer): Buffer {
    const id = Buffer.alloc(1)
    id[0] = algorithmId(algorithm)
    return concatBytes([id, bytes])
}

/** A trailer from encoded entries, with its head; refuses one above TRAILER_MAX. */
export function encodeTrailer(entries: Buffer[]): Buffer {
    const body = concatBytes(entries)
    const length = TRAILER_HEAD_SIZE + body.length
    if (length > TRAILER_MAX) throw new ImageError("trailer-length", "trailer too long")
    const head = Buffer.alloc(TRAILER_HEAD_SIZE)
    for (let i = 0; i < 4; i++) head[i] = TRAILER_MAGIC[i]
    writeU32(head, 4, length)
    return concatBytes([head, body])
}

/**
 * The message every signature covers: "bulwark-image-v1" || digest || key digest (80 bytes).
 * The digest covers header and payload; the key digest binds the signature to one release
 * identity (so no signature can be moved under another identity's keys).
 */
export function signedMessage(digest: Buffer, keyDigest: Buffer): Buffer {
    return concatBytes([SIGNED_LABEL, digest, keyDigest])
}
