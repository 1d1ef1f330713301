/**
 * Image verification (docs/image-format.md; GP-TM-03, GP-TM-04, GP-TM-06): the one routine
 * the boot stub, the update agent and the host tools use to decide whether an image may run.
 * It reads each byte of the source at most once, checks every length before use, fails
 * closed with an ImageError naming the check, and can hand back the payload bytes it hashed.
 */

import { concatBytes, equalBytes, isUint } from "./bytes"
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
    SignatureReport,
    signedMessage,
    TRAILER_HEAD_SIZE,
} from "./image-format"
import { checkSignatures, checkSigner, planSignatures } from "./image-trust"
import { Crypto } from "../hal/crypto"
import { OtpKeySlot } from "../hal/otp"

export { ImageError, compareVersions, parseVersion } from "./image-format"
export type {
    ImageHeader,
    ImageTrailer,
    SignatureReport,
    SignatureVerdict,
} from "./image-format"
export { checkTrailerTrust, verifyTrailerTrust } from "./image-trust"
export type { TrailerTrust, TrustOptions } from "./image-trust"

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
    /**
     * The device-target rule of a board that cannot verify ECDSA (DeviceScript): under the
     * "hybrid" policy, accept an image whose SLH-DSA half passes on this board while its
     * ECDSA half, present and covered by the anchor, is reported "unverifiable". It never
     * applies under "classical" or "pq-only", never where the board can verify ECDSA (the
     * half is then verified), and never turns the ECDSA verdict into "passed". Absent: false.
     */
    acceptUnverifiableEcdsa?: boolean
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
    /** One verdict per trailer signature, in trailer order (boot/image-format.ts). */
    signatures: SignatureReport[]
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
    const trailer = decodeTrailer(concatBytes([trailerHead, entries]))
    return {
        header: header,
        headerBytes: headerBytes,
        trailer: trailer,
        trailerOffset: trailerOffset,
        length: trailerOffset + length,
    }
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
 * keys against the key digest, the signatures the policy requires present, the digest over
 * header || payload, then the signatures over signedMessage(digest, keyDigest). Throws
 * ImageError naming the first failed check; read errors of the source (FlashError,
 * PowerLoss) pass through unchanged. The result reports a verdict per signature.
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
    const required = planSignatures(policy.signaturePolicy, trailer)

    const hashed = await hashImage(crypto, src, layout, policy.keepPayload)
    const digest = hashed.digest
    if (!equalBytes(digest, trailer.digest))
        throw new ImageError("digest", "digest does not match header and payload")

    const message = signedMessage(digest, trailer.keyDigest)
    const accept = policy.acceptUnverifiableEcdsa === true
    const signatures = await checkSignatures(
        crypto,
        policy.signaturePolicy,
        required,
        trailer,
        message,
        accept
    )

    return {
        header: header,
        digest: digest,
        keySlot: keySlot,
        length: layout.length,
        payload: hashed.payload,
        signatures: signatures,
    }
}
