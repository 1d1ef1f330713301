/**
 * Image verification (docs/image-format.md; GP-TM-03, GP-TM-04, GP-TM-06): the one routine
 * the boot stub, the update agent and the host tools use to decide whether an image may run.
 * It reads each byte of the source at most once, checks every length before use, fails
 * closed with an ImageError naming the check, and can hand back the payload bytes it hashed.
 */

import { equalBytes, isUint } from "./bytes"
import { anchorDigest, PublicKeyEntry } from "./anchor"
import { SignaturePolicy } from "./profile"
import {
    CHUNK_SIZE,
    decodeHeader,
    decodeTrailer,
    decodeTrailerHead,
    HEADER_SIZE,
    ImageError,
    ImageHeader,
    ImageTrailer,
    joinBytes,
    SignatureEntry,
    signedMessage,
    TRAILER_HEAD_SIZE,
} from "./image-format"
import { Crypto, SignatureAlgorithm } from "../hal/crypto"
import { OtpKeySlot } from "../hal/otp"

export { ImageError, compareVersions, parseVersion } from "./image-format"
export type { ImageHeader, ImageTrailer } from "./image-format"

/** Random-access bytes of an image: a flash slot, a file, a buffer. */
export interface ImageSource {
    size: number
    read(offset: number, length: number): Promise<Buffer>
}

export interface VerifyPolicy {
    /** Must equal header.deviceClass. */
    deviceClass: string
    /** The OTP anti-rollback counter: an image whose counter is below it is refused. */
    minSecurityCounter: number
    /** The OTP key slots as read (hal/otp.ts). */
    anchors: OtpKeySlot[]
    /** Which signatures must verify (boot/profile.ts). */
    signaturePolicy: SignaturePolicy
    /** The source must end exactly at the trailer's end (a file, a download). */
    exact: boolean
    /** Return the payload bytes that were hashed, so the loader runs what was verified. */
    keepPayload: boolean
}

export interface VerifiedImage {
    header: ImageHeader
    /** SHA-256 over header || payload, as computed (and equal to the trailer's digest entry). */
    digest: Buffer
    /** The OTP key slot whose anchor matched. */
    keySlot: number
    /** Header, payload and trailer: the image's total length in the source. */
    length: number
    payload: Buffer | null
}

/** Header and trailer of an image, parsed and bounds-checked but not verified. */
export interface ImageLayout {
    header: ImageHeader
    headerBytes: Buffer
    trailer: ImageTrailer
    trailerOffset: number
    length: number
}

async function readExact(src: ImageSource, offset: number, length: number): Promise<Buffer> {
    if (offset + length > src.size) throw new ImageError("truncated", "read past the source end")
    const data = await src.read(offset, length)
    if (data.length !== length) throw new ImageError("truncated", "short read")
    return data
}

function checkSource(src: ImageSource): void {
    if (!isUint(src.size, 0xffffffff)) throw new ImageError("truncated", "bad source size")
    if (src.size < HEADER_SIZE) throw new ImageError("truncated", "shorter than a header")
}

/** Reads and decodes the header alone (no trailer, no verdict). */
export async function parseImageHeader(src: ImageSource): Promise<ImageHeader> {
    checkSource(src)
    return decodeHeader(await readExact(src, 0, HEADER_SIZE))
}

/**
 * Reads the header and the trailer and checks that they fit the source: the payload must
 * leave room for a trailer head, the trailer must end inside the source and, when `exact`,
 * exactly at its end. Nothing is hashed or verified.
 */
export async function readImageLayout(src: ImageSource, exact: boolean): Promise<ImageLayout> {
    checkSource(src)
    const headerBytes = await readExact(src, 0, HEADER_SIZE)
    const header = decodeHeader(headerBytes)

    const trailerOffset = HEADER_SIZE + header.payloadSize
    if (trailerOffset + TRAILER_HEAD_SIZE > src.size)
        throw new ImageError("payload-size", "payload runs past the source end")
    const trailerHead = await readExact(src, trailerOffset, TRAILER_HEAD_SIZE)
    const length = decodeTrailerHead(trailerHead)
    if (trailerOffset + length > src.size)
        throw new ImageError("trailer-length", "trailer runs past the source end")
    if (exact && trailerOffset + length !== src.size)
        throw new ImageError("trailing-bytes", "bytes after the trailer")

    // Every byte is read once: the entries are read after the head, never the head again.
    const entries = await readExact(
        src,
        trailerOffset + TRAILER_HEAD_SIZE,
        length - TRAILER_HEAD_SIZE
    )
    const trailer = decodeTrailer(joinBytes([trailerHead, entries]))
    return {
        header: header,
        headerBytes: headerBytes,
        trailer: trailer,
        trailerOffset: trailerOffset,
        length: trailerOffset + length,
    }
}

/**
 * The OTP slot holding `keyDigest`. Every slot is visited; a revoked slot with this digest
 * refuses the key even if another slot holds it unrevoked.
 */
function findKeySlot(anchors: OtpKeySlot[], keyDigest: Buffer): number {
    let found = -1
    let revoked = false
    for (let i = 0; i < anchors.length; i++) {
        const slot = anchors[i]
        if (slot.digest === null || !equalBytes(slot.digest, keyDigest)) continue
        if (slot.revoked) revoked = true
        else if (found < 0) found = i
    }
    if (revoked) throw new ImageError("key-revoked", "signing key is revoked")
    if (found < 0) throw new ImageError("key-unknown", "signing key is not a trust anchor")
    return found
}

/**
 * The key digest must be an unrevoked OTP anchor and the trailer's public keys must hash to
 * it (boot/anchor.ts). Returns the matching key slot. Cheap: runs before any hashing.
 */
function checkSigner(crypto: Crypto, trailer: ImageTrailer, anchors: OtpKeySlot[]): number {
    const keySlot = findKeySlot(anchors, trailer.keyDigest)
    let identity: Buffer
    try {
        identity = anchorDigest(crypto, trailer.publicKeys)
    } catch {
        throw new ImageError("public-key", "public keys do not form an identity")
    }
    if (!equalBytes(identity, trailer.keyDigest))
        throw new ImageError("public-key", "public keys do not match the key digest")
    return keySlot
}

function hasKey(keys: PublicKeyEntry[], algorithm: SignatureAlgorithm): boolean {
    for (let i = 0; i < keys.length; i++) if (keys[i].algorithm === algorithm) return true
    return false
}

/** The signature algorithms that must verify under `policy` for this identity. */
function requiredAlgorithms(
    policy: SignaturePolicy,
    keys: PublicKeyEntry[]
): SignatureAlgorithm[] {
    const required: SignatureAlgorithm[] = []
    if (policy === "classical") {
        if (hasKey(keys, "ecdsa-p256-sha256")) required.push("ecdsa-p256-sha256")
        if (hasKey(keys, "ed25519")) required.push("ed25519")
    } else if (policy === "hybrid") {
        if (hasKey(keys, "ecdsa-p256-sha256") && hasKey(keys, "slh-dsa-sha2-128s")) {
            required.push("ecdsa-p256-sha256")
            required.push("slh-dsa-sha2-128s")
        }
    } else if (policy === "pq-only") {
        if (hasKey(keys, "slh-dsa-sha2-128s")) required.push("slh-dsa-sha2-128s")
    }
    if (required.length === 0)
        throw new ImageError("signature-policy", "identity cannot meet the signature policy")
    return required
}

function keyFor(keys: PublicKeyEntry[], algorithm: SignatureAlgorithm): Buffer {
    for (let i = 0; i < keys.length; i++) if (keys[i].algorithm === algorithm) return keys[i].key
    throw new ImageError("signature", "signature without a public key of its algorithm")
}

/**
 * Every required algorithm must have a signature that verifies; a further signature is
 * verified too when this board can (so a bad one is never ignored where it can be seen).
 */
async function checkSignatures(
    crypto: Crypto,
    policy: SignaturePolicy,
    trailer: ImageTrailer,
    message: Buffer
): Promise<void> {
    const required = requiredAlgorithms(policy, trailer.publicKeys)
    const available = crypto.verifiers()
    let verified = 0
    for (let i = 0; i < trailer.signatures.length; i++) {
        const entry: SignatureEntry = trailer.signatures[i]
        const key = keyFor(trailer.publicKeys, entry.algorithm)
        const isRequired = required.indexOf(entry.algorithm) >= 0
        if (!isRequired && available.indexOf(entry.algorithm) < 0) continue
        const ok = await crypto.verify(entry.algorithm, key, message, entry.signature)
        if (ok !== true) throw new ImageError("signature", "signature does not verify")
        if (isRequired) verified = verified + 1
    }
    if (verified !== required.length)
        throw new ImageError("signature-policy", "a signature the policy requires is missing")
}

/**
 * The trust checks of a signed trailer, shared with update offers (ota/offer.ts): the key
 * digest against the OTP slots, the public keys against the key digest, then the signatures
 * over `message` under `policy`. Returns the OTP key slot that matched; ImageError naming
 * the failed check ("key-revoked", "key-unknown", "public-key", "signature", ...).
 */
export async function verifyTrailerTrust(
    crypto: Crypto,
    trailer: ImageTrailer,
    message: Buffer,
    anchors: OtpKeySlot[],
    policy: SignaturePolicy
): Promise<number> {
    const keySlot = checkSigner(crypto, trailer, anchors)
    await checkSignatures(crypto, policy, trailer, message)
    return keySlot
}

class HashedImage {
    digest: Buffer = Buffer.alloc(0)
    payload: Buffer | null = null
}

/**
 * Hashes header || payload. Without `keep` the payload is read in CHUNK_SIZE pieces (a
 * device's heap holds one chunk at a time). With `keep` it is read once, whole, hashed and
 * returned as read: the loader runs exactly the bytes that were hashed, with no second read
 * and no copy (a fresh copy of a large payload costs more than hashing it).
 */
async function hashImage(
    crypto: Crypto,
    src: ImageSource,
    layout: ImageLayout,
    keep: boolean
): Promise<HashedImage> {
    const result = new HashedImage()
    const hash = crypto.createSha256()
    hash.update(layout.headerBytes)
    if (keep) {
        const payload = await readExact(src, HEADER_SIZE, layout.header.payloadSize)
        hash.update(payload)
        result.payload = payload
        result.digest = hash.digest()
        return result
    }
    // The loop stays inside the bounds readImageLayout checked, so it calls src.read
    // directly: one await a chunk instead of two (bench/verify.ts measures the difference).
    let offset = HEADER_SIZE
    while (offset < layout.trailerOffset) {
        let size = layout.trailerOffset - offset
        if (size > CHUNK_SIZE) size = CHUNK_SIZE
        const chunk = await src.read(offset, size)
        if (chunk.length !== size) throw new ImageError("truncated", "short read")
        hash.update(chunk)
        offset = offset + size
    }
    result.digest = hash.digest()
    return result
}

/**
 * Verifies an image against a policy. Checks, in order: the layout (readImageLayout), the
 * device class, the security counter, the key digest against the OTP slots, the public
 * keys against the key digest, the digest over header || payload, then the signatures over
 * signedMessage(digest, keyDigest). Throws ImageError naming the first failed check; read
 * errors of the source (FlashError, PowerLoss) pass through unchanged.
 */
export async function verifyImage(
    crypto: Crypto,
    src: ImageSource,
    policy: VerifyPolicy
): Promise<VerifiedImage> {
    const layout = await readImageLayout(src, policy.exact)
    const header = layout.header
    const trailer = layout.trailer

    if (header.deviceClass !== policy.deviceClass)
        throw new ImageError("device-class", "image is for another device class")
    if (header.securityCounter < policy.minSecurityCounter)
        throw new ImageError("security-counter", "security counter below the device's")

    const keySlot = checkSigner(crypto, trailer, policy.anchors)

    const hashed = await hashImage(crypto, src, layout, policy.keepPayload)
    const digest = hashed.digest
    if (!equalBytes(digest, trailer.digest))
        throw new ImageError("digest", "digest does not match header and payload")

    const message = signedMessage(digest, trailer.keyDigest)
    await checkSignatures(crypto, policy.signaturePolicy, trailer, message)

    return {
        header: header,
        digest: digest,
        keySlot: keySlot,
        length: layout.length,
        payload: hashed.payload,
    }
}
