/**
 * Secure element contract (DESIGN.md sections 3 and 5): key slots whose private halves
 * never leave the element. P-256 generate, sign a digest, verify, ECDH, symmetric secrets
 * for MACs that can only be evolved forward, monotonic counters, random bytes, zeroize.
 * Serves GP-TM-02 and GP-TM-35. No call of this contract returns a private key.
 */

export const SE_KEY_SLOT_COUNT = 8
export const SE_COUNTER_COUNT = 4

/** Well-known key slots. */
export const SE_SLOT_IDENTITY = 0
export const SE_SLOT_AUDIT = 1
/** HMAC secret authenticating the prefs records (src/prefs.ts); made at first use. */
export const SE_SLOT_PREFS = 2

// Well-known monotonic counters (0..SE_COUNTER_COUNT-1); the others are free.
/** The telemetry boot number (src/telemetry.ts): raised once per boot, at the first message. */
export const SE_COUNTER_TELEMETRY = 0

export interface SecureElement {
    /**
     * Generates a P-256 key pair inside the element and returns the public key (65-byte
     * uncompressed SEC1). SecureElementError "occupied" when the slot already holds a key.
     */
    generateKey(slot: number): Promise<Buffer>
    /** Public key of the slot's P-256 key; "empty" when there is none. */
    publicKey(slot: number): Promise<Buffer>
    /** ECDSA P-256 signature (64-byte r||s, low-S) of a 32-byte digest. */
    signDigest(slot: number, digest: Buffer): Promise<Buffer>
    /** Verifies a 64-byte r||s signature of a 32-byte digest with a given public key. */
    verifyDigest(publicKey: Buffer, digest: Buffer, signature: Buffer): Promise<boolean>
    /** ECDH shared secret (32-byte x coordinate) with the slot's key. */
    ecdh(slot: number, peerPublicKey: Buffer): Promise<Buffer>

    /** Creates a random 32-byte secret in the slot; "occupied" if the slot holds a key. */
    generateSecret(slot: number): Promise<void>
    /** HMAC-SHA-256 of `data` with the slot's secret. */
    hmac(slot: number, data: Buffer): Promise<Buffer>
    /**
     * Replaces the slot's secret with a one-way function of itself, so the old secret is
     * gone: what was MACed before cannot be re-MACed with a key taken later.
     */
    evolveSecret(slot: number): Promise<void>
    /** Erases the slot. */
    clearSlot(slot: number): Promise<void>

    readCounter(index: number): Promise<number>
    /** Adds one and returns the new value; never goes back. */
    incrementCounter(index: number): Promise<number>

    random(length: number): Promise<Buffer>
    /** Wipes every key and secret (tamper response). Counters keep their values. */
    zeroize(): Promise<void>
}
