/**
 * Typed errors of the hardware abstraction layer (DESIGN.md section 3).
 * Every contract fails with one of these; callers switch on `code`, which is stable,
 * and never on the message, which is for people. Messages never carry key material.
 */

export class HalError extends Error {
    readonly code: string
    constructor(code: string, message: string) {
        super(message)
        this.name = "HalError"
        this.code = code
    }
}

/** Flash codes: "partition", "range", "align", "not-erased", "locked", "io". */
export class FlashError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "FlashError"
    }
}

/**
 * Power was cut during (or just before) a flash operation. The sim raises it after the
 * Nth program or erase when a test arms a cut; the board then reboots. Code must never
 * catch it to carry on: it is the end of this run of the device.
 */
export class PowerLoss extends HalError {
    constructor(message: string) {
        super("power-loss", message)
        this.name = "PowerLoss"
    }
}

/** True for the end of a run by a power cut (PowerLoss, by its code): never caught to go on. */
export function isPowerLoss(e: unknown): boolean {
    return !!e && (e as { code?: unknown }).code === "power-loss"
}

/** OTP codes: "slot", "burnt", "locked", "counter", "range". */
export class OtpError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "OtpError"
    }
}

/** Secure element codes: "slot", "empty", "occupied", "input", "zeroized", "counter". */
export class SecureElementError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "SecureElementError"
    }
}

/** Crypto codes: "input", "algorithm", "auth" (an AEAD tag did not verify). */
export class CryptoError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "CryptoError"
    }
}

/** Transport codes: "tls", "auth", "closed", "timeout", "size", "refused". */
export class TransportError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "TransportError"
    }
}

/**
 * The board cannot provide this capability. Callers refuse the operation that needed it;
 * they never fall back to something weaker (no TLS means no network, not plaintext).
 */
export class UnsupportedError extends HalError {
    readonly capability: string
    constructor(capability: string) {
        super("unsupported", "unsupported on this board: " + capability)
        this.name = "UnsupportedError"
        this.capability = capability
    }
}

/**
 * A refusal by one of the firmware's own checks (image, boot state, offer, audit record,
 * request...): `check` names the failed check and is stable, like `code` above; the message
 * is for people. Each module's error extends this and keeps its own `name`.
 */
export class CheckError extends Error {
    readonly check: string
    constructor(check: string, message: string) {
        super(message)
        this.name = "CheckError"
        this.check = check
    }
}
