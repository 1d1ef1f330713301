/**
 * Crypto contract (DESIGN.md section 3): SHA-256, HMAC-SHA-256, HKDF, AES-256-CCM and,
 * where the board can do it, signature verification. Portable modules reach every
 * algorithm through this contract and never import a crypto library themselves.
 */

/** Signature algorithms the firmware knows. */
export type SignatureAlgorithm = "ecdsa-p256-sha256" | "ed25519" | "slh-dsa-sha2-128s"

export interface Sha256 {
    update(data: Buffer): void
    /** Finishes and returns the 32-byte digest; the object is spent afterwards. */
    digest(): Buffer
}

export interface Crypto {
    sha256(parts: Buffer[]): Buffer
    createSha256(): Sha256
    hmacSha256(key: Buffer, parts: Buffer[]): Buffer
    /** HKDF-SHA-256 (RFC 5869). */
    hkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer

    /** AES-256-CCM, 13-byte nonce, 16-byte tag appended to the ciphertext. */
    aeadSeal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer
    /** Opens what aeadSeal made; CryptoError "auth" when the tag does not verify. */
    aeadOpen(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer

    /** The signature algorithms `verify` can check on this board. */
    verifiers(): SignatureAlgorithm[]
    /**
     * Verifies `signature` over `message` (ECDSA hashes the message with SHA-256).
     * Public key formats: ECDSA 65-byte uncompressed SEC1, Ed25519 32 bytes; ECDSA
     * signatures are 64-byte r||s. Returns false for any malformed input; UnsupportedError
     * when the algorithm is not in `verifiers()`.
     */
    verify(
        algorithm: SignatureAlgorithm,
        publicKey: Buffer,
        message: Buffer,
        signature: Buffer
    ): Promise<boolean>
}
