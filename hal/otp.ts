/**
 * OTP contract: one-time-programmable fuses (DESIGN.md sections 3 and 5).
 * Three key-digest slots (SHA-256 of a release public key), each with a revoke bit;
 * an anti-rollback counter made of burnt bits that can only rise; lock bits.
 * Burning is irreversible; reading is free. Serves GP-TM-01, GP-TM-06 and GP-TM-33.
 */

export const OTP_KEY_SLOT_COUNT = 3
/** Bits in the anti-rollback counter: the highest security counter a board can reach. */
export const OTP_COUNTER_MAX = 64

export interface OtpKeySlot {
    /** SHA-256 digest burnt into the slot, or null while the slot is blank. */
    digest: Buffer | null
    revoked: boolean
}

export interface OtpLocks {
    /** Debug port (factory flashing, memory read-out) permanently disabled. */
    debugDisabled: boolean
    /** Key slots can no longer be burnt (revocation stays possible). */
    keysLocked: boolean
}

export type OtpLock = "debug-disabled" | "keys-locked"

export interface Otp {
    readKeySlot(index: number): Promise<OtpKeySlot>
    /** OtpError "slot" for a bad index, "burnt" if already burnt, "locked" after keys-locked. */
    burnKeySlot(index: number, digest: Buffer): Promise<void>
    /** Burns the revoke bit; idempotent. */
    revokeKeySlot(index: number): Promise<void>

    readCounter(): Promise<number>
    /**
     * Raises the counter to `value` (burns bits up to it). A value at or below the current
     * one changes nothing; above OTP_COUNTER_MAX is OtpError "counter".
     */
    raiseCounter(value: number): Promise<void>

    readLocks(): Promise<OtpLocks>
    burnLock(lock: OtpLock): Promise<void>
}
