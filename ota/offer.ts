/**
 * Update offers (docs/update-format.md; GP-TM-05, GP-TM-07, GP-TM-18): what a release signs
 * to tell a device "install this image": device class, version, security counter, image size
 * and digest, a rising sequence number (against replay and freeze), an optional expiry and
 * optional target device ids. Parsed like the image (every field checked, unknown ones
 * refused, OfferError naming the check) and signed with the image's trailer and trust code.
 */

import { allZero, concatBytes, equalBytes, isUint, readU16, readU32, writeU16, writeU32 } from "../boot/bytes"
import { checkTrailerTrust, compareVersions } from "../boot/image"
import {
    decodeTrailer,
    decodeTrailerHead,
    DIGEST_SIZE,
    HEADER_SIZE,
    ImageTrailer,
    parseVersion,
    SemVer,
    SignatureReport,
    TRAILER_HEAD_SIZE,
} from "../boot/image-format"
import { isSafeName, SignaturePolicy } from "../boot/profile"
import { Crypto } from "../hal/crypto"
import { OTP_COUNTER_MAX, OtpKeySlot } from "../hal/otp"
import { CheckError } from "../hal/errors"

/**
 * A refused offer; `check` names the failed check (table in docs/update-format.md).
 * `signatures` holds the per-signature verdicts when the refusal came after the signatures
 * were checked ("signature", "signature-unverifiable"), null otherwise.
 */
export class OfferError extends CheckError {
    signatures: SignatureReport[] | null
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "OfferError"
        this.signatures = null
    }
}

/** "BWOF": first four bytes of every offer. */
export const OFFER_MAGIC = Buffer.from("BWOF")
/** Version 1: no chunk table. Still accepted, and written for offers without a table. */
export const OFFER_FORMAT_V1 = 1
/** Version 2: the fixed part is followed by a chunk-table block (ChunkTableRef). */
export const OFFER_FORMAT_VERSION = 2
/** Bytes of the fixed part of the body, before the device class and the targets. */
export const OFFER_FIXED_SIZE = 68
/** Bytes of the chunk-table block of a version 2 body: chunk size (4), table digest (32). */
export const TABLE_BLOCK_SIZE = 36
/** Entries a chunk table may have (8 KiB of SHA-256 values, one MQTT message). */
export const MAX_TABLE_ENTRIES = 256
/** Largest chunk a table may describe (agent-wire MAX_CHUNK). */
export const MAX_TABLE_CHUNK = 65536
export const MAX_TARGETS = 64
export const MAX_NAME = 64
/** Domain-separation label of offer signatures (16 bytes, like the image's). */
export const OFFER_SIGNED_LABEL = Buffer.from("bulwark-offer-v1")
/** The smallest image the format allows: a header and an empty trailer head. */
export const MIN_IMAGE_SIZE = HEADER_SIZE + TRAILER_HEAD_SIZE

export interface Offer {
    /** Rises with every offer of a release line; the device refuses one not above its own. */
    sequence: number
    deviceClass: string
    /** "X.Y.Z" of the offered image. */
    version: string
    securityCounter: number
    /** Bytes of the whole image (header, payload, trailer). */
    imageSize: number
    /** SHA-256 of the whole image, exactly `imageSize` bytes. */
    imageDigest: Buffer
    /** Seconds since the epoch after which the offer is void; null for none. */
    expiry: number | null
    /** Devices the offer is for; empty: every device of the class. */
    targets: string[]
    /** Per-chunk hashes of the image (format version 2); absent or null: none (version 1). */
    chunkTable?: ChunkTableRef | null
}

/**
 * What a version 2 offer signs about its chunk table: the image is downloaded in chunks of
 * `chunkSize` bytes (the last one shorter), and `digest` is SHA-256 of the table, the
 * concatenated SHA-256 of every chunk in order (docs/update-format.md).
 */
export interface ChunkTableRef {
    chunkSize: number
    digest: Buffer
}

/** Chunks of an image of `imageSize` bytes cut in `chunkSize` pieces. */
export function chunkCount(imageSize: number, chunkSize: number): number {
    return Math.floor((imageSize + chunkSize - 1) / chunkSize)
}

export interface ParsedOffer {
    offer: Offer
    body: Buffer
    trailer: ImageTrailer
}

export interface VerifiedOffer {
    offer: Offer
    /** SHA-256 of the whole offer message (body and trailer): identifies it for dedup. */
    offerDigest: Buffer
    keySlot: number
    /** One verdict per signature of the offer's trailer, in trailer order. */
    signatures: SignatureReport[]
}

function checkNames(offer: Offer): void {
    if (!isSafeName(offer.deviceClass))
        throw new OfferError("class-name", "device class must be 1-64 of a-z, 0-9, '-' and '.'")
    if (offer.targets.length > MAX_TARGETS)
        throw new OfferError("targets", "at most " + MAX_TARGETS + " target devices")
    for (let i = 0; i < offer.targets.length; i++) {
        if (!isSafeName(offer.targets[i]))
            throw new OfferError("target", "target ids must be 1-64 of a-z, 0-9, '-' and '.'")
        for (let j = 0; j < i; j++)
            if (offer.targets[j] === offer.targets[i])
                throw new OfferError("target", "a target id appears twice")
    }
}

function checkTable(offer: Offer): void {
    const table = offer.chunkTable
    if (table === undefined || table === null) return
    if (!isUint(table.chunkSize, MAX_TABLE_CHUNK) || table.chunkSize < 1)
        throw new OfferError("chunk-table", "chunk size must be 1 to 65536")
    if (chunkCount(offer.imageSize, table.chunkSize) > MAX_TABLE_ENTRIES)
        throw new OfferError("chunk-table", "at most " + MAX_TABLE_ENTRIES + " chunks")
    if (!table.digest || table.digest.length !== DIGEST_SIZE)
        throw new OfferError("chunk-table", "table digest must be 32 bytes")
}

function checkNumbers(offer: Offer): void {
    if (!isUint(offer.sequence, 0xffffffff) || offer.sequence < 1)
        throw new OfferError("sequence", "sequence must be 1 to 2^32-1")
    if (!isUint(offer.imageSize, 0xffffffff) || offer.imageSize < MIN_IMAGE_SIZE)
        throw new OfferError("image-size", "image size out of bounds")
    if (!isUint(offer.securityCounter, OTP_COUNTER_MAX))
        throw new OfferError("security-counter", "security counter above what OTP can hold")
    if (offer.expiry !== null && (!isUint(offer.expiry, 0xffffffff) || offer.expiry < 1))
        throw new OfferError("expiry", "expiry must be 1 to 2^32-1 seconds")
}

/** The body bytes of an offer; refuses (OfferError) whatever decodeOfferBody would refuse. */
export function encodeOfferBody(offer: Offer): Buffer {
    checkNumbers(offer)
    checkNames(offer)
    let version: SemVer
    try {
        version = parseVersion(offer.version)
    } catch {
        throw new OfferError("version", "version must be X.Y.Z")
    }
    if (!offer.imageDigest || offer.imageDigest.length !== DIGEST_SIZE)
        throw new OfferError("image-digest", "image digest must be 32 bytes")

    checkTable(offer)
    const table = offer.chunkTable === undefined ? null : offer.chunkTable
    const fixed = Buffer.alloc(OFFER_FIXED_SIZE)
    for (let i = 0; i < 4; i++) fixed[i] = OFFER_MAGIC[i]
    writeU16(fixed, 4, table === null ? OFFER_FORMAT_V1 : OFFER_FORMAT_VERSION)
    writeU32(fixed, 8, offer.sequence)
    writeU32(fixed, 12, offer.imageSize)
    writeU32(fixed, 16, offer.securityCounter)
    writeU16(fixed, 20, version.major)
    writeU16(fixed, 22, version.minor)
    writeU16(fixed, 24, version.patch)
    writeU32(fixed, 28, offer.expiry === null ? 0 : offer.expiry)
    for (let i = 0; i < DIGEST_SIZE; i++) fixed[32 + i] = offer.imageDigest[i]
    const name = Buffer.from(offer.deviceClass)
    fixed[64] = name.length
    fixed[65] = offer.targets.length

    const parts: Buffer[] = [fixed]
    if (table !== null) {
        const block = Buffer.alloc(TABLE_BLOCK_SIZE)
        writeU32(block, 0, table.chunkSize)
        for (let i = 0; i < DIGEST_SIZE; i++) block[4 + i] = table.digest[i]
        parts.push(block)
    }
    parts.push(name)
    for (let i = 0; i < offer.targets.length; i++) {
        const id = Buffer.from(offer.targets[i])
        const len = Buffer.alloc(1)
        len[0] = id.length
        parts.push(len)
        parts.push(id)
    }
    const body = concatBytes(parts)
    writeU16(body, 6, body.length)
    return body
}

function nameAt(bytes: Buffer, offset: number, length: number, check: string): string {
    if (length < 1 || length > MAX_NAME) throw new OfferError(check, "name length out of range")
    if (offset + length > bytes.length) throw new OfferError("truncated", "name past the end")
    const name = bytes.slice(offset, offset + length).toString()
    if (!isSafeName(name) || name.length !== length)
        throw new OfferError(check, "names must be 1-64 of a-z, 0-9, '-' and '.'")
    return name
}

/**
 * Decodes the body at the start of `bytes`, version 1 or 2. Checks, in order: truncated,
 * magic, format-version, body-size, flags, reserved, sequence, image-size,
 * security-counter, expiry, class-name, targets, target, chunk-table. Returns the offer
 * (with `chunkTable` only for version 2) and the body's length.
 */
export function decodeOfferBody(bytes: Buffer): { offer: Offer; size: number } {
    if (bytes.length < OFFER_FIXED_SIZE) throw new OfferError("truncated", "shorter than an offer")
    for (let i = 0; i < 4; i++)
        if (bytes[i] !== OFFER_MAGIC[i]) throw new OfferError("magic", "not a Bulwark offer")
    const format = readU16(bytes, 4)
    if (format !== OFFER_FORMAT_V1 && format !== OFFER_FORMAT_VERSION)
        throw new OfferError("format-version", "unsupported offer format version")
    let start = OFFER_FIXED_SIZE
    if (format === OFFER_FORMAT_VERSION) start = OFFER_FIXED_SIZE + TABLE_BLOCK_SIZE
    const size = readU16(bytes, 6)
    if (size < start + 1 || size > bytes.length)
        throw new OfferError("body-size", "body size out of bounds")
    if (readU16(bytes, 26) !== 0) throw new OfferError("flags", "reserved flags are set")
    if (!allZero(bytes, 66, 68)) throw new OfferError("reserved", "reserved bytes are set")

    const expiry = readU32(bytes, 28)
    const classLength = bytes[64]
    const targetCount = bytes[65]
    if (targetCount > MAX_TARGETS)
        throw new OfferError("targets", "at most " + MAX_TARGETS + " target devices")
    let pos = start
    const deviceClass = nameAt(bytes, pos, classLength, "class-name")
    pos = pos + classLength
    const targets: string[] = []
    for (let i = 0; i < targetCount; i++) {
        if (pos + 1 > size) throw new OfferError("body-size", "targets run past the body")
        const length = bytes[pos]
        if (pos + 1 + length > size) throw new OfferError("body-size", "target past the body")
        targets.push(nameAt(bytes, pos + 1, length, "target"))
        pos = pos + 1 + length
    }
    if (pos !== size) throw new OfferError("body-size", "body size does not match its fields")

    const offer: Offer = {
        sequence: readU32(bytes, 8),
        deviceClass: deviceClass,
        version: readU16(bytes, 20) + "." + readU16(bytes, 22) + "." + readU16(bytes, 24),
        securityCounter: readU32(bytes, 16),
        imageSize: readU32(bytes, 12),
        imageDigest: bytes.slice(32, 32 + DIGEST_SIZE),
        expiry: expiry === 0 ? null : expiry,
        targets: targets,
    }
    if (format === OFFER_FORMAT_VERSION) {
        const at = OFFER_FIXED_SIZE
        const digest = bytes.slice(at + 4, at + 4 + DIGEST_SIZE)
        offer.chunkTable = { chunkSize: readU32(bytes, at), digest: digest }
    }
    checkNumbers(offer)
    checkNames(offer)
    checkTable(offer)
    return { offer: offer, size: size }
}

/** The message every offer signature covers: label || SHA-256(body) || key digest. */
export function offerSignedMessage(bodyDigest: Buffer, keyDigest: Buffer): Buffer {
    return concatBytes([OFFER_SIGNED_LABEL, bodyDigest, keyDigest])
}

function asOfferError(err: any): OfferError {
    if (err instanceof OfferError) return err
    if (err && typeof err.check === "string") {
        // A trailer without its signature entries is an unsigned offer.
        const check = err.check === "entry-missing" ? "unsigned" : err.check
        const out = new OfferError(check, err.message)
        if (Array.isArray(err.signatures)) out.signatures = err.signatures
        return out
    }
    return new OfferError("malformed", "offer does not parse")
}

/**
 * Splits an offer message into body and trailer and decodes both, without any trust
 * decision. "unsigned" when no trailer follows the body; the trailer must end exactly at
 * the end of the message.
 */
export function parseOffer(bytes: Buffer): ParsedOffer {
    try {
        const decoded = decodeOfferBody(bytes)
        const body = bytes.slice(0, decoded.size)
        const rest = bytes.slice(decoded.size)
        if (rest.length === 0) throw new OfferError("unsigned", "offer carries no signature")
        const length = decodeTrailerHead(rest)
        if (length !== rest.length)
            throw new OfferError("trailer-length", "trailer does not end the offer")
        return { offer: decoded.offer, body: body, trailer: decodeTrailer(rest) }
    } catch (err) {
        throw asOfferError(err)
    }
}

export interface OfferTrust {
    /** The OTP key slots as read (hal/otp.ts). */
    anchors: OtpKeySlot[]
    signaturePolicy: SignaturePolicy
    /**
     * The device-target rule of a board that cannot verify ECDSA (VerifyPolicy in
     * boot/image.ts): under "hybrid", the ECDSA half may stay "unverifiable" when the
     * SLH-DSA half passed. Give it the value the boot stub's image checks use. Absent: false.
     */
    acceptUnverifiableEcdsa?: boolean
}

/**
 * Parses and authenticates an offer: the trailer's digest entry must be SHA-256 of the body,
 * its key digest must sit in a non-revoked OTP slot, and the signatures the policy requires
 * must verify over offerSignedMessage. Only then are its fields worth reading. The result
 * and a refusal after the signatures were checked carry the per-signature verdicts.
 */
export async function verifyOffer(
    crypto: Crypto,
    bytes: Buffer,
    trust: OfferTrust
): Promise<VerifiedOffer> {
    const parsed = parseOffer(bytes)
    const bodyDigest = crypto.sha256([parsed.body])
    if (!equalBytes(bodyDigest, parsed.trailer.digest))
        throw new OfferError("offer-digest", "digest entry does not match the offer body")
    const message = offerSignedMessage(bodyDigest, parsed.trailer.keyDigest)
    const options = { acceptUnverifiableEcdsa: trust.acceptUnverifiableEcdsa === true }
    let keySlot: number
    let signatures: SignatureReport[]
    try {
        const checked = await checkTrailerTrust(
            crypto,
            parsed.trailer,
            message,
            trust.anchors,
            trust.signaturePolicy,
            options
        )
        keySlot = checked.keySlot
        signatures = checked.signatures
    } catch (err) {
        if (err && (err as any).code !== undefined) throw err
        throw asOfferError(err)
    }
    return {
        offer: parsed.offer,
        offerDigest: crypto.sha256([bytes]),
        keySlot: keySlot,
        signatures: signatures,
    }
}

/** What the device knows when it judges an authenticated offer. */
export interface DeviceFacts {
    deviceId: string
    deviceClass: string
    /** Version of the image that runs now. */
    runningVersion: string
    /** The OTP anti-rollback counter. */
    otpCounter: number
    /** Highest offer sequence this device has accepted (0 for none). */
    storedSequence: number
    /** Bytes of the slot the image would go to. */
    slotSize: number
    /** clock.wallTime(): null when the device does not know the time. */
    wallTime: number | null
}

/**
 * Checks an authenticated offer against the device, in order: device-class, target,
 * replayed, expired, downgrade, security-counter, oversized. Returns the failed check's
 * name, or null when the device may take the offer. Pure.
 */
export function judgeOffer(offer: Offer, device: DeviceFacts): string | null {
    if (offer.deviceClass !== device.deviceClass) return "device-class"
    if (offer.targets.length > 0 && offer.targets.indexOf(device.deviceId) < 0) return "target"
    if (offer.sequence <= device.storedSequence) return "replayed"
    if (offer.expiry !== null && device.wallTime !== null && device.wallTime >= offer.expiry)
        return "expired"
    if (compareVersions(offer.version, device.runningVersion) <= 0) return "downgrade"
    if (offer.securityCounter < device.otpCounter) return "security-counter"
    if (offer.imageSize > device.slotSize) return "oversized"
    return null
}
