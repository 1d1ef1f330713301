/**
 * The device's identity (DESIGN.md section 5; GP-TM-21, GP-TM-35, GP-TM-49): its id, the
 * certificate the fleet CA issued for the key in secure-element slot 0, the pinned fleet CA,
 * and the salted slow hash of its one-time setup code (GP-TM-09). Kept on the "identity"
 * flash partition in two copies with sequence numbers, so a torn rewrite keeps the old one;
 * each copy is signed by the identity key itself, so flash access alone cannot swap the CA.
 */

import { isHexText, readU32, writeU32 } from "../boot/bytes"
import { isSafeName } from "../boot/profile"
import { Clock } from "../hal/clock"
import { Crypto } from "../hal/crypto"
import { FlashPartition } from "../hal/flash"
import { SE_SLOT_IDENTITY, SecureElement } from "../hal/secure-element"
import { hashPassword, Pause, PasswordRecord, SALT_LENGTH, verifyPassword } from "./credentials"
import { CheckError } from "../hal/errors"

export const PARTITION_IDENTITY = "identity"
/**
 * Record layout: magic "BWID" | version u8 | 3 reserved | seq u32 | body length u32 | body |
 * signature (64-byte r||s by SE slot 0 over SHA-256(header || body)).
 */
const MAGIC = "BWID"
const RECORD_VERSION = 1
const HEADER_LENGTH = 16
const SIGNATURE_LENGTH = 64
const MAX_PEM_LENGTH = 4096

/** PBKDF2-HMAC-SHA256 iterations for setup codes: deliberately slow on every target. */
export const SETUP_CODE_ITERATIONS = 100000
export const SETUP_CODE_SALT_LENGTH = SALT_LENGTH
/** Crockford base32: no I, L, O or U, so a code read off a label is not misread. */
const SETUP_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
/** 16 symbols of 5 bits: 80 random bits, shown as four groups of four. */
export const SETUP_CODE_SYMBOLS = 16

/** Checks: "record", "field", "partition", "setup-code". */
export class IdentityError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "identity: " + check + ": " + message)
        this.name = "IdentityError"
    }
}

/** A salted slow hash of the setup code; the code itself is stored nowhere. */
export interface SetupCodeHash {
    alg: "pbkdf2-hmac-sha256"
    iterations: number
    /** Hex. */
    salt: string
    /** Hex, 32 bytes. */
    hash: string
}

export interface DeviceIdentity {
    deviceId: string
    /** The device certificate (subject CN = deviceId, issued by the fleet CA). */
    certificatePem: string
    /** The fleet CA the broker certificate must chain to (DESIGN.md section 5). */
    caPem: string
    setupCode: SetupCodeHash
    /**
     * Set while a certificate renewed over the network is on trial (src/renewal.ts): the
     * certificate that last connected, restored if the broker refuses the new one.
     */
    previousCertificatePem?: string
}

/** Default device id: "dev-" and the first 12 hex digits of SHA-256 of the public key. */
export function deviceIdFromPublicKey(crypto: Crypto, publicKey: Buffer): string {
    return "dev-" + crypto.sha256([publicKey]).toString("hex").slice(0, 12)
}

function isPem(value: unknown, label: string): boolean {
    if (typeof value !== "string" || value.length > MAX_PEM_LENGTH) return false
    return value.indexOf("-----BEGIN " + label + "-----") === 0 &&
        value.indexOf("-----END " + label + "-----") > 0
}

/** Validates a decoded identity object field by field; IdentityError "field" names it. */
export function checkIdentity(value: unknown): DeviceIdentity {
    if (value === null || typeof value !== "object") throw new IdentityError("field", "(root)")
    const v = value as { [key: string]: any }
    if (!isSafeName(v["deviceId"])) throw new IdentityError("field", "deviceId")
    if (!isPem(v["certificatePem"], "CERTIFICATE"))
        throw new IdentityError("field", "certificatePem")
    if (!isPem(v["caPem"], "CERTIFICATE")) throw new IdentityError("field", "caPem")
    const s = v["setupCode"]
    if (s === null || typeof s !== "object") throw new IdentityError("field", "setupCode")
    if (s["alg"] !== "pbkdf2-hmac-sha256") throw new IdentityError("field", "setupCode.alg")
    const it = s["iterations"]
    if (typeof it !== "number" || Math.floor(it) !== it || it < 1000 || it > 10000000)
        throw new IdentityError("field", "setupCode.iterations")
    if (!isHexText(s["salt"], SALT_LENGTH))
        throw new IdentityError("field", "setupCode.salt")
    if (!isHexText(s["hash"], 32)) throw new IdentityError("field", "setupCode.hash")
    const checked: DeviceIdentity = {
        deviceId: v["deviceId"],
        certificatePem: v["certificatePem"],
        caPem: v["caPem"],
        setupCode: { alg: "pbkdf2-hmac-sha256", iterations: it, salt: s["salt"], hash: s["hash"] },
    }
    const previous = v["previousCertificatePem"]
    if (previous !== undefined && previous !== null) {
        if (!isPem(previous, "CERTIFICATE"))
            throw new IdentityError("field", "previousCertificatePem")
        checked.previousCertificatePem = previous
    }
    return checked
}

/** Bytes of one copy: the partition split in two whole-sector halves. */
function copySize(p: FlashPartition): number {
    const sectors = Math.floor(p.size / p.sectorSize)
    if (sectors < 2) throw new IdentityError("partition", "needs at least two sectors")
    return Math.floor(sectors / 2) * p.sectorSize
}

/** Serialises a record: header, JSON body and the identity key's signature over both. */
export async function encodeIdentityRecord(
    crypto: Crypto,
    se: SecureElement,
    identity: DeviceIdentity,
    seq: number
): Promise<Buffer> {
    const body = Buffer.from(JSON.stringify(checkIdentity(identity)))
    const header = Buffer.alloc(HEADER_LENGTH)
    const magic = Buffer.from(MAGIC)
    for (let i = 0; i < 4; i++) header[i] = magic[i]
    header[4] = RECORD_VERSION
    writeU32(header, 8, seq)
    writeU32(header, 12, body.length)
    const signature = await se.signDigest(SE_SLOT_IDENTITY, crypto.sha256([header, body]))
    // Built by hand: DeviceScript's Buffer.concat is variadic, Node's takes a list.
    const out = Buffer.alloc(HEADER_LENGTH + body.length + signature.length)
    out.set(header, 0)
    out.set(body, HEADER_LENGTH)
    out.set(signature, HEADER_LENGTH + body.length)
    return out
}

interface StoredCopy {
    seq: number
    identity: DeviceIdentity
}

interface Store {
    crypto: Crypto
    se: SecureElement
    p: FlashPartition
    /** The identity key's public half; a record signed by any other key is not ours. */
    publicKey: Buffer
}

/** Reads and checks one copy; null when it is erased, torn, forged or otherwise invalid. */
async function readCopy(st: Store, offset: number, size: number): Promise<StoredCopy | null> {
    const header = await st.p.read(offset, HEADER_LENGTH)
    if (header.slice(0, 4).toString() !== MAGIC || header[4] !== RECORD_VERSION) return null
    const length = readU32(header, 12)
    if (length < 2 || length > size - HEADER_LENGTH - SIGNATURE_LENGTH) return null
    const rest = await st.p.read(offset + HEADER_LENGTH, length + SIGNATURE_LENGTH)
    const body = rest.slice(0, length)
    const digest = st.crypto.sha256([header, body])
    if (!(await st.se.verifyDigest(st.publicKey, digest, rest.slice(length)))) return null
    let parsed: unknown
    try {
        parsed = JSON.parse(body.toString("utf-8"))
        return { seq: readU32(header, 8), identity: checkIdentity(parsed) }
    } catch (e) {
        return null
    }
}

async function readBoth(st: Store): Promise<(StoredCopy | null)[]> {
    const size = copySize(st.p)
    return [await readCopy(st, 0, size), await readCopy(st, size, size)]
}

function newest(copies: (StoredCopy | null)[]): number {
    const a = copies[0]
    const b = copies[1]
    if (a === null && b === null) return -1
    if (b === null) return 0
    if (a === null) return 1
    return b.seq > a.seq ? 1 : 0
}

async function openStore(crypto: Crypto, se: SecureElement, p: FlashPartition): Promise<Store> {
    return { crypto: crypto, se: se, p: p, publicKey: await se.publicKey(SE_SLOT_IDENTITY) }
}

/**
 * The device's identity, or null when the device has not been provisioned (no identity
 * key, or no valid record signed by it).
 */
export async function readIdentity(
    crypto: Crypto,
    se: SecureElement,
    p: FlashPartition
): Promise<DeviceIdentity | null> {
    let st: Store
    try {
        st = await openStore(crypto, se, p)
    } catch (e) {
        return null
    }
    const copies = await readBoth(st)
    const i = newest(copies)
    return i < 0 ? null : copies[i]!.identity
}

/**
 * Stores `identity` in the copy that does not hold the newest record, with the next
 * sequence number: a power cut at any point leaves either the old or the new record whole.
 */
export async function writeIdentity(
    crypto: Crypto,
    se: SecureElement,
    p: FlashPartition,
    identity: DeviceIdentity
): Promise<void> {
    const size = copySize(p)
    const copies = await readBoth(await openStore(crypto, se, p))
    const current = newest(copies)
    const seq = current < 0 ? 1 : copies[current]!.seq + 1
    const record = await encodeIdentityRecord(crypto, se, identity, seq)
    if (record.length > size) throw new IdentityError("record", "larger than a copy")
    const padded = Buffer.alloc(Math.ceil(record.length / p.writeAlign) * p.writeAlign)
    for (let i = 0; i < padded.length; i++) padded[i] = i < record.length ? record[i] : 0xff
    const offset = current === 0 ? size : 0
    await p.erase(offset, size)
    await p.program(offset, padded)
}

/** Turns 10 random bytes into a 16-symbol setup code "XXXX-XXXX-XXXX-XXXX". */
export function formatSetupCode(random: Buffer): string {
    if (random.length !== 10) throw new IdentityError("setup-code", "needs 10 random bytes")
    let out = ""
    let acc = 0
    let bits = 0
    for (let i = 0; i < random.length; i++) {
        acc = (acc & 0xff) * 256 + random[i]
        bits += 8
        while (bits >= 5) {
            bits -= 5
            const symbol = Math.floor(acc / Math.pow(2, bits)) & 31
            if (out.length === 4 || out.length === 9 || out.length === 14) out = out + "-"
            out = out + SETUP_ALPHABET.charAt(symbol)
        }
    }
    return out
}

/**
 * Canonical form of a typed setup code: upper case, separators and spaces removed, the
 * look-alikes O, I and L read as 0, 1 and 1. Null when it is not 16 symbols of the alphabet.
 */
export function normalizeSetupCode(typed: string): string | null {
    let out = ""
    for (let i = 0; i < typed.length && i < 64; i++) {
        let c = typed.charAt(i).toUpperCase()
        if (c === "-" || c === " ") continue
        if (c === "O") c = "0"
        if (c === "I" || c === "L") c = "1"
        if (SETUP_ALPHABET.indexOf(c) < 0) return null
        out = out + c
    }
    return out.length === SETUP_CODE_SYMBOLS ? out : null
}

/** Lets a long derivation yield on the board clock (DeviceScript stops long busy loops). */
function pauseOn(clock: Clock): Pause {
    return function (): Promise<void> {
        return clock.sleep(0)
    }
}

/**
 * Hashes a setup code for storage with src/credentials.ts (PBKDF2-HMAC-SHA256, a
 * 16-byte salt from the board's cryptographic RNG, `iterations` rounds).
 */
export async function hashSetupCode(
    crypto: Crypto,
    clock: Clock,
    code: string,
    salt: Buffer,
    iterations: number
): Promise<SetupCodeHash> {
    const canonical = normalizeSetupCode(code)
    if (canonical === null) throw new IdentityError("setup-code", "malformed")
    const record = await hashPassword(crypto, salt, canonical, iterations, pauseOn(clock))
    return {
        alg: "pbkdf2-hmac-sha256",
        iterations: record.iterations,
        salt: record.salt.toString("hex"),
        hash: record.hash.toString("hex"),
    }
}

/** The stored setup-code hash as a credentials.ts PasswordRecord. */
export function setupCodeRecord(stored: SetupCodeHash): PasswordRecord {
    return {
        iterations: stored.iterations,
        salt: Buffer.from(stored.salt, "hex"),
        hash: Buffer.from(stored.hash, "hex"),
    }
}

/**
 * True when `typed` is the device's setup code (look-alike letters and separators
 * forgiven). A malformed input costs the same derivation as a wrong one, and the final
 * comparison is constant-time, so timing tells nothing either.
 */
export async function verifySetupCode(
    crypto: Crypto,
    clock: Clock,
    typed: string,
    stored: SetupCodeHash
): Promise<boolean> {
    const canonical = normalizeSetupCode(typed)
    const candidate = canonical === null ? "-" : canonical
    const match = await verifyPassword(crypto, setupCodeRecord(stored), candidate, pauseOn(clock))
    return match && canonical !== null
}
