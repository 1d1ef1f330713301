/**
 * SimCrypto: the sim board's implementation of the hal/crypto.ts contract on Node's
 * crypto (OpenSSL) and the noble libraries. SHA-256 (FIPS 180-4), HMAC (RFC 2104), HKDF
 * (RFC 5869), AES-256-CCM (SP 800-38C), and signature verification for ECDSA P-256
 * (FIPS 186-5), Ed25519 (RFC 8032) and SLH-DSA-SHA2-128s (FIPS 205). Serves GP-TM-03/04.
 */

import {
    createCipheriv,
    createDecipheriv,
    createHash,
    createHmac,
    createPublicKey,
    hkdfSync,
    verify as nodeVerify,
    KeyObject,
} from "node:crypto"
import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { Crypto, Sha256, SignatureAlgorithm } from "../hal/crypto"
import { CryptoError, UnsupportedError } from "../hal/errors"

const ALGORITHMS: SignatureAlgorithm[] = ["ecdsa-p256-sha256", "ed25519", "slh-dsa-sha2-128s"]

/** DER SubjectPublicKeyInfo prefixes (RFC 5480, RFC 8410) for wrapping raw public keys. */
const P256_SPKI_PREFIX = Buffer.from(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200",
    "hex"
)
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

const ECDSA_PUBLIC_KEY_LENGTH = 65
const ECDSA_SIGNATURE_LENGTH = 64
const ED25519_PUBLIC_KEY_LENGTH = 32
const ED25519_SIGNATURE_LENGTH = 64
const SLH_DSA_PUBLIC_KEY_LENGTH = 32
const SLH_DSA_SIGNATURE_LENGTH = 7856

function isBytes(value: unknown): value is Buffer {
    return value instanceof Uint8Array
}

/**
 * Parsed public keys by their exact DER bytes: parsing and validating a P-256 point costs
 * about as much as the verification itself, and a device checks the same few release keys
 * again and again. Bounded; a key that fails to parse is never cached.
 */
const keyCache = new Map<string, KeyObject>()
const KEY_CACHE_LIMIT = 64

function spkiKey(prefix: Buffer, raw: Buffer): KeyObject | null {
    const der = Buffer.concat([prefix, raw])
    const id = der.toString("hex")
    const cached = keyCache.get(id)
    if (cached !== undefined) return cached
    let key: KeyObject
    try {
        key = createPublicKey({ key: der, format: "der", type: "spki" })
    } catch {
        return null
    }
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear()
    keyCache.set(id, key)
    return key
}

/**
 * ECDSA P-256 / SHA-256 through Node (OpenSSL). `signature` is r||s (IEEE P1363).
 * High-S signatures are accepted: ECDSA is malleable by design, Wycheproof's p1363 vectors
 * count them valid, and nothing in Bulwark identifies an image by its signature bytes
 * (images are identified by their digest). Our signer only makes low-S signatures.
 */
export function verifyEcdsaNode(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
    if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature)) return false
    if (publicKey.length !== ECDSA_PUBLIC_KEY_LENGTH || publicKey[0] !== 0x04) return false
    if (signature.length !== ECDSA_SIGNATURE_LENGTH) return false
    const key = spkiKey(P256_SPKI_PREFIX, publicKey)
    if (key === null) return false
    try {
        return nodeVerify(
            "sha256",
            message,
            { key: key, dsaEncoding: "ieee-p1363" },
            signature
        )
    } catch {
        return false
    }
}

/** ECDSA P-256 / SHA-256 through noble-curves, with the same rules as verifyEcdsaNode. */
export function verifyEcdsaNoble(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
    if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature)) return false
    if (publicKey.length !== ECDSA_PUBLIC_KEY_LENGTH || publicKey[0] !== 0x04) return false
    if (signature.length !== ECDSA_SIGNATURE_LENGTH) return false
    try {
        return p256.verify(signature, message, publicKey, {
            prehash: true,
            lowS: false,
            format: "compact",
        })
    } catch {
        return false
    }
}

/**
 * Ed25519 (RFC 8032, pure, strict): Node (OpenSSL) refuses S >= L and non-canonical
 * encodings of A and R, as RFC 8032 section 5.1.7 asks.
 */
export function verifyEd25519Node(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
    if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature)) return false
    if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) return false
    if (signature.length !== ED25519_SIGNATURE_LENGTH) return false
    const key = spkiKey(ED25519_SPKI_PREFIX, publicKey)
    if (key === null) return false
    try {
        return nodeVerify(null, message, key, signature)
    } catch {
        return false
    }
}

/** Ed25519 through noble-curves in strict RFC 8032 mode (zip215 off), for differential tests. */
export function verifyEd25519Noble(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
    if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature)) return false
    if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) return false
    if (signature.length !== ED25519_SIGNATURE_LENGTH) return false
    try {
        return ed25519.verify(signature, message, publicKey, { zip215: false })
    } catch {
        return false
    }
}

/**
 * SLH-DSA-SHA2-128s (FIPS 205), the pure external interface with an empty context
 * (Algorithm 24, slh_verify): the verified message is M' = 0x00 || 0x00 || M. This is
 * noble's `slh_dsa_sha2_128s.verify(sig, msg, pub)`, not its `.internal` interface.
 */
export function verifySlhDsa(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
    if (!isBytes(publicKey) || !isBytes(message) || !isBytes(signature)) return false
    if (publicKey.length !== SLH_DSA_PUBLIC_KEY_LENGTH) return false
    if (signature.length !== SLH_DSA_SIGNATURE_LENGTH) return false
    try {
        return slh_dsa_sha2_128s.verify(signature, message, publicKey)
    } catch {
        return false
    }
}

class NodeSha256 implements Sha256 {
    private readonly hash = createHash("sha256")
    update(data: Buffer): void {
        this.hash.update(data)
    }
    digest(): Buffer {
        return this.hash.digest()
    }
}

const CCM_NONCE_LENGTH = 13
const CCM_TAG_LENGTH = 16

function checkAeadInputs(key: Buffer, nonce: Buffer): void {
    if (!isBytes(key) || key.length !== 32) throw new CryptoError("input", "key must be 32 bytes")
    if (!isBytes(nonce) || nonce.length !== CCM_NONCE_LENGTH)
        throw new CryptoError("input", "nonce must be 13 bytes")
}

export class SimCrypto implements Crypto {
    sha256(parts: Buffer[]): Buffer {
        const hash = createHash("sha256")
        for (const part of parts) hash.update(part)
        return hash.digest()
    }

    createSha256(): Sha256 {
        return new NodeSha256()
    }

    hmacSha256(key: Buffer, parts: Buffer[]): Buffer {
        const mac = createHmac("sha256", key)
        for (const part of parts) mac.update(part)
        return mac.digest()
    }

    hkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
        if (!Number.isInteger(length) || length < 1 || length > 255 * 32)
            throw new CryptoError("input", "HKDF length must be 1 to 8160 bytes")
        return Buffer.from(hkdfSync("sha256", ikm, salt, info, length))
    }

    aeadSeal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
        checkAeadInputs(key, nonce)
        const cipher = createCipheriv("aes-256-ccm", key, nonce, { authTagLength: CCM_TAG_LENGTH })
        cipher.setAAD(aad, { plaintextLength: plaintext.length })
        const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
        return Buffer.concat([body, cipher.getAuthTag()])
    }

    aeadOpen(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer {
        checkAeadInputs(key, nonce)
        if (!isBytes(sealed) || sealed.length < CCM_TAG_LENGTH)
            throw new CryptoError("auth", "sealed data shorter than its tag")
        const body = sealed.subarray(0, sealed.length - CCM_TAG_LENGTH)
        const tag = sealed.subarray(sealed.length - CCM_TAG_LENGTH)
        try {
            const decipher = createDecipheriv("aes-256-ccm", key, nonce, {
                authTagLength: CCM_TAG_LENGTH,
            })
            decipher.setAuthTag(tag)
            decipher.setAAD(aad, { plaintextLength: body.length })
            const plain = decipher.update(body)
            decipher.final()
            return Buffer.from(plain)
        } catch {
            throw new CryptoError("auth", "authentication tag does not verify")
        }
    }

    verifiers(): SignatureAlgorithm[] {
        return ALGORITHMS.slice(0)
    }

    /** ECDSA and Ed25519 go through Node (the faster path; bench/verify.ts measures it). */
    async verify(
        algorithm: SignatureAlgorithm,
        publicKey: Buffer,
        message: Buffer,
        signature: Buffer
    ): Promise<boolean> {
        if (algorithm === "ecdsa-p256-sha256") return verifyEcdsaNode(publicKey, message, signature)
        if (algorithm === "ed25519") return verifyEd25519Node(publicKey, message, signature)
        if (algorithm === "slh-dsa-sha2-128s") return verifySlhDsa(publicKey, message, signature)
        throw new UnsupportedError("signature algorithm " + String(algorithm))
    }
}

/**
 * SimCrypto that verifies only `algorithms`: the sim's stand-in for a board that cannot
 * check the others (a DeviceScript board verifies SLH-DSA alone). `verifiers()` lists only
 * them and `verify` refuses the rest with UnsupportedError, as the contract says.
 */
export class RestrictedCrypto extends SimCrypto {
    private readonly only: SignatureAlgorithm[]

    constructor(algorithms: SignatureAlgorithm[]) {
        super()
        this.only = algorithms.filter((a) => ALGORITHMS.includes(a))
    }

    override verifiers(): SignatureAlgorithm[] {
        return this.only.slice(0)
    }

    override async verify(
        algorithm: SignatureAlgorithm,
        publicKey: Buffer,
        message: Buffer,
        signature: Buffer
    ): Promise<boolean> {
        if (!this.only.includes(algorithm))
            throw new UnsupportedError("signature algorithm " + String(algorithm))
        return super.verify(algorithm, publicKey, message, signature)
    }
}
