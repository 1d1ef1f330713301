/**
 * Host-side offer signing (docs/update-format.md; GP-TM-05, GP-TM-18): encodes an offer body
 * with the device's own encoder, appends a trailer built with the image's trailer encoders
 * and signs offerSignedMessage with every key of the release identity, checking each
 * signature it made. `offerForImage` derives the image fields from a signed image file.
 */

import {
    algorithmValue,
    encodeEntry,
    encodeTrailer,
    ENTRY_DIGEST,
    ENTRY_KEY_DIGEST,
    ENTRY_PUBLIC_KEY,
    ENTRY_SIGNATURE,
} from "../../boot/image-format"
import { parseImageHeader } from "../../boot/image"
import { SimCrypto } from "../../sim/crypto"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { bufferSource, signMessage } from "../../tools/signer"
import { encodeOfferBody, Offer, OfferError, offerSignedMessage } from "../offer"
import { ChunkTableRef } from "../offer"

const crypto = new SimCrypto()

/** A complete signed offer message: body || trailer. */
export async function signOffer(offer: Offer, key: ReleasePrivateKey): Promise<Buffer> {
    return await signOfferBody(encodeOfferBody(offer), key)
}

/** Signs body bytes as they are (tests use it to sign bodies the encoder would refuse). */
export async function signOfferBody(body: Buffer, key: ReleasePrivateKey): Promise<Buffer> {
    const digest = crypto.sha256([body])
    const message = offerSignedMessage(digest, key.anchor)
    const entries: Buffer[] = [
        encodeEntry(ENTRY_DIGEST, digest),
        encodeEntry(ENTRY_KEY_DIGEST, key.anchor),
    ]
    for (const k of key.keys)
        entries.push(encodeEntry(ENTRY_PUBLIC_KEY, algorithmValue(k.algorithm, k.publicKey)))
    for (const k of key.keys) {
        const signature = signMessage(k, message)
        if (!(await crypto.verify(k.algorithm, k.publicKey, message, signature)))
            throw new OfferError("signature", "a fresh signature does not verify")
        entries.push(encodeEntry(ENTRY_SIGNATURE, algorithmValue(k.algorithm, signature)))
    }
    return Buffer.concat([body, encodeTrailer(entries)])
}

export interface OfferOptions {
    sequence: number
    /** Seconds since the epoch; null or absent for none. */
    expiry?: number | null
    targets?: string[]
    /**
     * Cut the image in chunks of this many bytes and sign the SHA-256 of their hash table
     * into the offer (format version 2); absent: a version 1 offer without a table.
     */
    chunkTableSize?: number
}

/** The chunk table of `image`: SHA-256 of each `chunkSize`-byte chunk, concatenated. */
export function chunkHashes(image: Buffer, chunkSize: number): Buffer {
    const hashes: Buffer[] = []
    for (let at = 0; at < image.length; at += chunkSize)
        hashes.push(crypto.sha256([image.subarray(at, at + chunkSize)]))
    return Buffer.concat(hashes)
}

/** What an offer signs about the chunk table of `image`. */
export function chunkTableRef(image: Buffer, chunkSize: number): ChunkTableRef {
    return { chunkSize: chunkSize, digest: crypto.sha256([chunkHashes(image, chunkSize)]) }
}

/**
 * The offer for a signed image: class, version and security counter from its header, size
 * and SHA-256 of the whole file. The image is not verified here (the device does that);
 * a file that is not an image is refused by its header parser.
 */
export async function offerForImage(image: Buffer, options: OfferOptions): Promise<Offer> {
    const header = await parseImageHeader(bufferSource(image))
    const offer: Offer = {
        sequence: options.sequence,
        deviceClass: header.deviceClass,
        version: header.version,
        securityCounter: header.securityCounter,
        imageSize: image.length,
        imageDigest: crypto.sha256([image]),
        expiry: options.expiry ?? null,
        targets: options.targets ?? [],
    }
    if (options.chunkTableSize !== undefined)
        offer.chunkTable = chunkTableRef(image, options.chunkTableSize)
    return offer
}
