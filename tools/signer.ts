/**
 * Host-side image signer (docs/image-format.md; GP-TM-03, GP-TM-04): builds header,
 * payload and trailer with the same encoders the boot stub decodes with, signs
 * signedMessage(digest, key digest) with every key of the release identity (ECDSA P-256
 * low-S and Ed25519 via noble, SLH-DSA-SHA2-128s pure FIPS 205), and checks each signature.
 */

import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import {
    algorithmValue,
    encodeEntry,
    encodeHeader,
    encodeTrailer,
    ENTRY_DIGEST,
    ENTRY_KEY_DIGEST,
    ENTRY_PUBLIC_KEY,
    ENTRY_SIGNATURE,
    IMAGE_TYPE_APP,
    ImageError,
    signedMessage,
} from "../boot/image-format"
import { ImageSource } from "../boot/image"
import { SimCrypto } from "../sim/crypto"
import { PrivateKeyEntry, ReleasePrivateKey } from "./keyfile"

export interface SignImageOptions {
    payload: Buffer
    /** "X.Y.Z", each part 0..65535. */
    version: string
    /** Security counter, 0..OTP_COUNTER_MAX (hal/otp.ts). */
    counter: number
    deviceClass: string
    /** Defaults to IMAGE_TYPE_APP. */
    imageType?: number
    key: ReleasePrivateKey
}

const crypto = new SimCrypto()

/** One signature over `message` with one key; ECDSA signatures are always low-S. */
export function signMessage(entry: PrivateKeyEntry, message: Buffer): Buffer {
    if (entry.algorithm === "ecdsa-p256-sha256")
        return Buffer.from(p256.sign(message, entry.privateKey, { lowS: true, prehash: true }))
    if (entry.algorithm === "ed25519") return Buffer.from(ed25519.sign(message, entry.privateKey))
    return Buffer.from(slh_dsa_sha2_128s.sign(message, entry.privateKey))
}

/**
 * A complete signed image: header || payload || trailer. Refuses (ImageError naming the
 * field) whatever the parser would refuse, and checks every signature it made before
 * returning, so a faulty signing run never produces an image.
 */
export async function buildSignedImage(options: SignImageOptions): Promise<Buffer> {
    const header = encodeHeader({
        imageType: options.imageType === undefined ? IMAGE_TYPE_APP : options.imageType,
        deviceClass: options.deviceClass,
        version: options.version,
        securityCounter: options.counter,
        payloadSize: options.payload.length,
    })
    const digest = crypto.sha256([header, options.payload])
    const keyDigest = options.key.anchor
    const message = signedMessage(digest, keyDigest)

    const entries: Buffer[] = [
        encodeEntry(ENTRY_DIGEST, digest),
        encodeEntry(ENTRY_KEY_DIGEST, keyDigest),
    ]
    for (const k of options.key.keys)
        entries.push(encodeEntry(ENTRY_PUBLIC_KEY, algorithmValue(k.algorithm, k.publicKey)))
    for (const k of options.key.keys) {
        const signature = signMessage(k, message)
        if (!(await crypto.verify(k.algorithm, k.publicKey, message, signature)))
            throw new ImageError("signature", "a fresh signature does not verify")
        entries.push(encodeEntry(ENTRY_SIGNATURE, algorithmValue(k.algorithm, signature)))
    }
    return Buffer.concat([header, options.payload, encodeTrailer(entries)])
}

/**
 * An ImageSource over bytes in memory (a file read whole, a test image). Reads are views,
 * not copies: verifyImage hashes each chunk as it arrives and copies the payload it keeps.
 */
export function bufferSource(bytes: Buffer): ImageSource {
    return {
        size: bytes.length,
        read: async (offset: number, length: number) => bytes.subarray(offset, offset + length),
    }
}
