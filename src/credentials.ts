/**
 * Credentials: the owner-password policy (GP-TM-22, GP-TM-23) and the stored form of every
 * secret a person types, the owner password and the device's setup code (GP-TM-24): a
 * salted, deliberately slow PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) over the HAL Crypto,
 * compared in constant time. Nothing here keeps or logs a secret in clear.
 */

import { equalBytes, readU32, writeU32 } from "../boot/bytes"
import { Crypto } from "../hal/crypto"
import { isCommonPassword } from "./common-passwords"
import { CheckError } from "../hal/errors"

/**
 * Iterations for new records. The count is stored in each record, so raising it later
 * only needs the next password change. Chosen so a login costs well under a second in the
 * sim and a few seconds on an ESP32, where each HMAC is one native call.
 */
export const PBKDF2_DEFAULT_ITERATIONS = 100000
/** Records below this are refused as damaged or downgraded. */
export const PBKDF2_MIN_ITERATIONS = 1000
export const PBKDF2_MAX_ITERATIONS = 10000000
export const SALT_LENGTH = 16
export const HASH_LENGTH = 32

export const PASSWORD_MIN_LENGTH = 12
export const PASSWORD_MAX_LENGTH = 128

const RECORD_VERSION = 1
const ALG_PBKDF2_HMAC_SHA256 = 1
/** version, alg, iterations (u32), salt length, salt, hash length, hash. */
export const PASSWORD_RECORD_LENGTH = 1 + 1 + 4 + 1 + SALT_LENGTH + 1 + HASH_LENGTH
/** HMAC rounds between two awaits of `pause`, well below DeviceScript's loop limit. */
const ROUNDS_PER_PAUSE = 1000

/** Codes: "format" (a stored record is damaged), "input" (a bad argument). */
export class CredentialError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "CredentialError"
    }
}

export interface PasswordRecord {
    iterations: number
    salt: Buffer
    hash: Buffer
}

/** Lets a long derivation yield to the scheduler (e.g. `() => clock.sleep(0)`). */
export type Pause = () => Promise<void>

/**
 * PBKDF2-HMAC-SHA256 with a 32-byte output (one block, RFC 8018 section 5.2): the key is
 * U1 ^ U2 ^ ... ^ Uc with U1 = HMAC(P, S || INT(1)) and Ui = HMAC(P, U(i-1)).
 */
export async function pbkdf2Sha256(
    crypto: Crypto,
    password: Buffer,
    salt: Buffer,
    iterations: number,
    pause?: Pause
): Promise<Buffer> {
    if (iterations < 1 || Math.floor(iterations) !== iterations)
        throw new CredentialError("input", "iterations must be a positive integer")
    const blockIndex = Buffer.alloc(4)
    writeU32(blockIndex, 0, 1)
    let u = crypto.hmacSha256(password, [salt, blockIndex])
    const out = Buffer.alloc(HASH_LENGTH)
    for (let j = 0; j < HASH_LENGTH; j++) out[j] = u[j]
    let sincePause = 0
    for (let i = 1; i < iterations; i++) {
        u = crypto.hmacSha256(password, [u])
        for (let j = 0; j < HASH_LENGTH; j++) out[j] = out[j] ^ u[j]
        sincePause++
        if (pause && sincePause >= ROUNDS_PER_PAUSE) {
            sincePause = 0
            await pause()
        }
    }
    return out
}

/** Hashes `secret` with a fresh `salt` (SALT_LENGTH random bytes from the board's Rng). */
export async function hashPassword(
    crypto: Crypto,
    salt: Buffer,
    secret: string,
    iterations: number,
    pause?: Pause
): Promise<PasswordRecord> {
    if (salt.length !== SALT_LENGTH) throw new CredentialError("input", "salt must be 16 bytes")
    if (iterations < PBKDF2_MIN_ITERATIONS || iterations > PBKDF2_MAX_ITERATIONS)
        throw new CredentialError("input", "iterations out of range")
    const hash = await pbkdf2Sha256(crypto, Buffer.from(secret), salt, iterations, pause)
    return { iterations: iterations, salt: salt, hash: hash }
}

/**
 * True when `candidate` hashes to the record. The derivation always runs in full and the
 * final comparison is constant-time (boot/bytes.ts equalBytes), so timing tells nothing
 * about how much of the candidate was right.
 */
export async function verifyPassword(
    crypto: Crypto,
    record: PasswordRecord,
    candidate: string,
    pause?: Pause
): Promise<boolean> {
    const derived = await pbkdf2Sha256(
        crypto,
        Buffer.from(candidate),
        record.salt,
        record.iterations,
        pause
    )
    return equalBytes(derived, record.hash)
}

export function encodePasswordRecord(record: PasswordRecord): Buffer {
    if (record.salt.length !== SALT_LENGTH || record.hash.length !== HASH_LENGTH)
        throw new CredentialError("input", "salt or hash has the wrong length")
    const out = Buffer.alloc(PASSWORD_RECORD_LENGTH)
    out[0] = RECORD_VERSION
    out[1] = ALG_PBKDF2_HMAC_SHA256
    writeU32(out, 2, record.iterations)
    out[6] = SALT_LENGTH
    for (let i = 0; i < SALT_LENGTH; i++) out[7 + i] = record.salt[i]
    out[7 + SALT_LENGTH] = HASH_LENGTH
    for (let i = 0; i < HASH_LENGTH; i++) out[8 + SALT_LENGTH + i] = record.hash[i]
    return out
}

/** Parses what encodePasswordRecord wrote; CredentialError "format" for anything else. */
export function decodePasswordRecord(buf: Buffer): PasswordRecord {
    if (buf.length !== PASSWORD_RECORD_LENGTH)
        throw new CredentialError("format", "password record has the wrong length")
    if (buf[0] !== RECORD_VERSION) throw new CredentialError("format", "unknown record version")
    if (buf[1] !== ALG_PBKDF2_HMAC_SHA256)
        throw new CredentialError("format", "unknown hash algorithm")
    const iterations = readU32(buf, 2)
    if (iterations < PBKDF2_MIN_ITERATIONS || iterations > PBKDF2_MAX_ITERATIONS)
        throw new CredentialError("format", "iteration count out of range")
    if (buf[6] !== SALT_LENGTH || buf[7 + SALT_LENGTH] !== HASH_LENGTH)
        throw new CredentialError("format", "salt or hash length")
    return {
        iterations: iterations,
        salt: buf.slice(7, 7 + SALT_LENGTH),
        hash: buf.slice(8 + SALT_LENGTH, 8 + SALT_LENGTH + HASH_LENGTH),
    }
}

/** What a new password must not be derived from. */
export interface PolicyContext {
    deviceId?: string
    setupCode?: string
    deviceClass?: string
    username?: string
}

/**
 * Reasons a password is refused, told to the person choosing it (they are about the new
 * password only, never about an existing credential): "blank", "too-short", "too-long",
 * "control-character", "common", "derived-from-device", "repetitive".
 */
export interface PolicyVerdict {
    ok: boolean
    reason: string
}

function lowerAlnum(value: string): string {
    const lower = value.toLowerCase()
    let out = ""
    for (let i = 0; i < lower.length; i++) {
        const c = lower.charCodeAt(i)
        if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)) out += lower.charAt(i)
    }
    return out
}

function isLetter(c: number): boolean {
    return (c >= 0x61 && c <= 0x7a) || c >= 0x80
}

/** The password with digits and symbols stripped from both ends ("Summer2024!" -> "summer"). */
function letterCore(lower: string): string {
    let start = 0
    let end = lower.length
    while (start < end && !isLetter(lower.charCodeAt(start))) start++
    while (end > start && !isLetter(lower.charCodeAt(end - 1))) end--
    return lower.slice(start, end)
}

/** True when `value` is one unit repeated ("abcabcabcabc") or a run of +1/-1 steps. */
function isPatterned(value: string): boolean {
    const n = value.length
    for (let unit = 1; unit <= Math.floor(n / 2); unit++) {
        if (Math.floor(n / unit) * unit !== n) continue
        let repeats = true
        for (let i = unit; i < n && repeats; i++)
            if (value.charCodeAt(i) !== value.charCodeAt(i - unit)) repeats = false
        if (repeats) return true
    }
    let up = true
    let down = true
    for (let i = 1; i < n; i++) {
        const step = value.charCodeAt(i) - value.charCodeAt(i - 1)
        if (step !== 1) up = false
        if (step !== -1) down = false
    }
    return up || down
}

function distinctCount(value: string): number {
    let seen = ""
    for (let i = 0; i < value.length; i++) {
        const ch = value.charAt(i)
        if (seen.indexOf(ch) < 0) seen += ch
    }
    return seen.length
}

/** True when `haystack` holds the whole token or any of its alphanumeric runs of 4 or more. */
function containsToken(haystack: string, token: string | undefined): boolean {
    if (token === undefined) return false
    const whole = lowerAlnum(token)
    if (whole.length >= 4 && haystack.indexOf(whole) >= 0) return true
    const lower = token.toLowerCase() + " "
    let run = ""
    for (let i = 0; i < lower.length; i++) {
        const part = lowerAlnum(lower.charAt(i))
        if (part.length > 0) {
            run += part
            continue
        }
        if (run.length >= 4 && haystack.indexOf(run) >= 0) return true
        run = ""
    }
    return false
}

/**
 * Checks a new owner password against the policy of docs/admin.md: 12 to 128 characters,
 * printable, not on the bundled common list (also with digits and symbols stripped from
 * its ends), not built from the device id, class, setup code or user name, not a repeated
 * unit or a plain sequence, and at least 5 different characters.
 */
export function checkPasswordPolicy(password: string, context: PolicyContext): PolicyVerdict {
    if (password.trim().length === 0) return { ok: false, reason: "blank" }
    for (let i = 0; i < password.length; i++) {
        const c = password.charCodeAt(i)
        if (c < 0x20 || c === 0x7f) return { ok: false, reason: "control-character" }
    }
    if (password.length < PASSWORD_MIN_LENGTH) return { ok: false, reason: "too-short" }
    if (password.length > PASSWORD_MAX_LENGTH) return { ok: false, reason: "too-long" }

    const lower = password.toLowerCase()
    const core = letterCore(lower)
    if (isCommonPassword(lower) || isCommonPassword(core) || isCommonPassword(lowerAlnum(lower)))
        return { ok: false, reason: "common" }

    const flat = lowerAlnum(password)
    if (
        containsToken(flat, context.deviceId) ||
        containsToken(flat, context.setupCode) ||
        containsToken(flat, context.deviceClass) ||
        containsToken(flat, context.username)
    )
        return { ok: false, reason: "derived-from-device" }

    if (distinctCount(lower) < 5 || isPatterned(lower) || isPatterned(flat))
        return { ok: false, reason: "repetitive" }
    return { ok: true, reason: "ok" }
}
