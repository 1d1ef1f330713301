/**
 * Release-key identities and their trust anchors (DESIGN.md section 5; GP-TM-01, GP-TM-03).
 * A release identity is one or more public keys (one ECDSA P-256 or Ed25519 key, or a
 * hybrid ECDSA P-256 + SLH-DSA-SHA2-128s pair). Its anchor is one SHA-256 digest over all
 * of its keys, burnt into an OTP key slot, so no half of a hybrid identity can be swapped
 * alone. Layout of the digested bytes, in docs/image-format.md:
 *   "bulwark-anchor-v1" (17 ASCII bytes) || count (u8) || per key: alg id (u8) ||
 *   key length (u16 BE) || key bytes, keys in ascending alg id order.
 */

import { u16 } from "./bytes"
import { Crypto, SignatureAlgorithm } from "../hal/crypto"
import { CheckError } from "../hal/errors"

export const ALG_ECDSA_P256 = 1
export const ALG_ED25519 = 2
export const ALG_SLH_DSA_SHA2_128S = 3

export interface PublicKeyEntry {
    algorithm: SignatureAlgorithm
    key: Buffer
}

export class AnchorError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "AnchorError"
    }
}

export function algorithmId(algorithm: SignatureAlgorithm): number {
    if (algorithm === "ecdsa-p256-sha256") return ALG_ECDSA_P256
    if (algorithm === "ed25519") return ALG_ED25519
    if (algorithm === "slh-dsa-sha2-128s") return ALG_SLH_DSA_SHA2_128S
    throw new AnchorError("algorithm", "unknown signature algorithm")
}

export function algorithmFromId(id: number): SignatureAlgorithm | null {
    if (id === ALG_ECDSA_P256) return "ecdsa-p256-sha256"
    if (id === ALG_ED25519) return "ed25519"
    if (id === ALG_SLH_DSA_SHA2_128S) return "slh-dsa-sha2-128s"
    return null
}

/** Expected public-key length of each algorithm. */
export function publicKeyLength(algorithm: SignatureAlgorithm): number {
    if (algorithm === "ecdsa-p256-sha256") return 65
    return 32
}

const ANCHOR_LABEL = "bulwark-anchor-v1"

/**
 * The anchor digest of an identity. Refuses an empty identity, a duplicated algorithm and
 * a key of the wrong length, so two different identities can never share an encoding.
 */
export function anchorDigest(crypto: Crypto, keys: PublicKeyEntry[]): Buffer {
    if (keys.length < 1 || keys.length > 3) throw new AnchorError("count", "1 to 3 keys")
    const sorted = keys.slice(0)
    sorted.sort((a, b) => algorithmId(a.algorithm) - algorithmId(b.algorithm))
    const parts: Buffer[] = [Buffer.from(ANCHOR_LABEL), Buffer.alloc(1)]
    parts[1][0] = sorted.length
    for (let i = 0; i < sorted.length; i++) {
        const entry = sorted[i]
        const id = algorithmId(entry.algorithm)
        if (i > 0 && algorithmId(sorted[i - 1].algorithm) === id)
            throw new AnchorError("duplicate", "an algorithm appears twice in one identity")
        if (entry.key.length !== publicKeyLength(entry.algorithm))
            throw new AnchorError("key-length", "public key has the wrong length")
        const tag = Buffer.alloc(1)
        tag[0] = id
        parts.push(tag)
        parts.push(u16(entry.key.length))
        parts.push(entry.key)
    }
    return crypto.sha256(parts)
}
