/**
 * Release-key files of the vendor (DESIGN.md section 5; GP-TM-01, GP-TM-03, GP-TM-35):
 * `release.key` (private, mode 0600, never overwritten) and `release.pub` (public keys plus
 * the trust anchor that goes into an OTP key slot). An identity is a list of keys: one
 * classical key, or the hybrid ECDSA P-256 + SLH-DSA-SHA2-128s pair under one anchor.
 */

import {
    closeSync,
    fchmodSync,
    mkdirSync,
    openSync,
    readFileSync,
    unlinkSync,
    writeSync,
} from "node:fs"
import { join } from "node:path"
import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"
import { SignatureAlgorithm } from "../hal/crypto"
import { AnchorError, anchorDigest, publicKeyLength, PublicKeyEntry } from "../boot/anchor"
import { SimCrypto } from "../sim/crypto"
import { UsageError } from "./args"

export const PRIVATE_FORMAT = "bulwark-release-key"
export const PUBLIC_FORMAT = "bulwark-release-pub"
export const PRIVATE_KEY_FILE = "release.key"
export const PUBLIC_KEY_FILE = "release.pub"

/** What a key file says its identity is: one classical key, or the hybrid pair. */
export type IdentityAlgorithm = "ecdsa-p256-sha256" | "ed25519" | "hybrid"
/** The `--alg` choices of `bulwark keys new`. */
export type KeyChoice = "p256" | "ed25519" | "hybrid"

export interface PrivateKeyEntry {
    algorithm: SignatureAlgorithm
    privateKey: Buffer
    publicKey: Buffer
}

export interface ReleasePublicKey {
    algorithm: IdentityAlgorithm
    keys: PublicKeyEntry[]
    /** anchorDigest (boot/anchor.ts) over every key: the value burnt into an OTP key slot. */
    anchor: Buffer
}

export interface ReleasePrivateKey {
    algorithm: IdentityAlgorithm
    keys: PrivateKeyEntry[]
    anchor: Buffer
}

/** A key file is missing, unreadable or invalid; `check` names the failed field (exit 2). */
export class KeyFileError extends UsageError {
    readonly check: string
    constructor(check: string, message: string) {
        super(message)
        this.name = "KeyFileError"
        this.check = check
    }
}

const PRIVATE_KEY_LENGTH: Record<SignatureAlgorithm, number> = {
    "ecdsa-p256-sha256": 32,
    ed25519: 32,
    "slh-dsa-sha2-128s": 64,
}

const crypto = new SimCrypto()

/** The trust anchor of an identity (the digest the boot stub compares with OTP slots). */
export function releaseAnchor(keys: PublicKeyEntry[]): Buffer {
    return anchorDigest(crypto, keys)
}

function derivePublicKey(algorithm: SignatureAlgorithm, privateKey: Buffer): Buffer {
    if (algorithm === "ecdsa-p256-sha256") return Buffer.from(p256.getPublicKey(privateKey, false))
    if (algorithm === "ed25519") return Buffer.from(ed25519.getPublicKey(privateKey))
    // SLH-DSA secret keys are SK.seed || SK.prf || PK.seed || PK.root (FIPS 205 section 9.1).
    return Buffer.from(privateKey.subarray(32, 64))
}

function newP256Key(): PrivateKeyEntry {
    const sk = Buffer.from(p256.utils.randomSecretKey())
    const pk = derivePublicKey("ecdsa-p256-sha256", sk)
    return { algorithm: "ecdsa-p256-sha256", privateKey: sk, publicKey: pk }
}

/** SLH-DSA-SHA2-128s key generation (FIPS 205 Algorithm 21) from a fresh 48-byte seed. */
function newSlhDsaKey(): PrivateKeyEntry {
    const pair = slh_dsa_sha2_128s.keygen()
    return {
        algorithm: "slh-dsa-sha2-128s",
        privateKey: Buffer.from(pair.secretKey),
        publicKey: Buffer.from(pair.publicKey),
    }
}

/**
 * A fresh identity from the system CSPRNG (noble uses crypto.getRandomValues): one P-256 or
 * Ed25519 key, or for "hybrid" a P-256 key and an SLH-DSA-SHA2-128s key under one anchor.
 */
export function generateReleaseKey(choice: KeyChoice): ReleasePrivateKey {
    let keys: PrivateKeyEntry[]
    let algorithm: IdentityAlgorithm
    if (choice === "p256") {
        keys = [newP256Key()]
        algorithm = "ecdsa-p256-sha256"
    } else if (choice === "ed25519") {
        const sk = Buffer.from(ed25519.utils.randomSecretKey())
        keys = [{ algorithm: "ed25519", privateKey: sk, publicKey: derivePublicKey("ed25519", sk) }]
        algorithm = "ed25519"
    } else if (choice === "hybrid") {
        keys = [newP256Key(), newSlhDsaKey()]
        algorithm = "hybrid"
    } else {
        throw new UsageError("--alg must be p256, ed25519 or hybrid")
    }
    return { algorithm: algorithm, keys: keys, anchor: releaseAnchor(publicEntries(keys)) }
}

function publicJson(key: ReleasePrivateKey | ReleasePublicKey): string {
    const out = {
        format: PUBLIC_FORMAT,
        algorithm: key.algorithm,
        keys: key.keys.map((k) => ({ algorithm: k.algorithm, publicKey: toHexKey(k) })),
        anchor: key.anchor.toString("hex"),
    }
    return JSON.stringify(out, null, 2) + "\n"
}

function toHexKey(k: PublicKeyEntry | PrivateKeyEntry): string {
    return ("publicKey" in k ? k.publicKey : k.key).toString("hex")
}

function privateJson(key: ReleasePrivateKey): string {
    const out = {
        format: PRIVATE_FORMAT,
        algorithm: key.algorithm,
        keys: key.keys.map((k) => ({
            algorithm: k.algorithm,
            privateKey: k.privateKey.toString("hex"),
            publicKey: k.publicKey.toString("hex"),
        })),
    }
    return JSON.stringify(out, null, 2) + "\n"
}

function openNew(path: string, mode: number): number {
    try {
        return openSync(path, "wx", mode)
    } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === "EEXIST")
            throw new KeyFileError(
                "exists",
                `${path} already exists; key files are never overwritten`
            )
        throw new KeyFileError("write", `cannot create ${path}: ${code ?? "error"}`)
    }
}

/**
 * Writes DIR/release.key (0600) and DIR/release.pub. Both are created with O_EXCL: an
 * existing file of either name is a KeyFileError "exists" and nothing is written.
 */
export function writeReleaseKeyFiles(
    dir: string,
    key: ReleasePrivateKey
): { keyPath: string; pubPath: string } {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const keyPath = join(dir, PRIVATE_KEY_FILE)
    const pubPath = join(dir, PUBLIC_KEY_FILE)
    const keyFd = openNew(keyPath, 0o600)
    let pubFd: number
    try {
        pubFd = openNew(pubPath, 0o644)
    } catch (err) {
        closeSync(keyFd)
        unlinkSync(keyPath)
        throw err
    }
    try {
        fchmodSync(keyFd, 0o600)
        writeSync(keyFd, privateJson(key))
        writeSync(pubFd, publicJson(key))
    } finally {
        closeSync(keyFd)
        closeSync(pubFd)
    }
    return { keyPath: keyPath, pubPath: pubPath }
}

type Json = { [name: string]: unknown }

function readJson(path: string): Json {
    let text: string
    try {
        text = readFileSync(path, "utf8")
    } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        throw new KeyFileError("read", `cannot read ${path}: ${code ?? "error"}`)
    }
    let value: unknown
    try {
        value = JSON.parse(text)
    } catch {
        throw new KeyFileError("json", `${path} is not JSON`)
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new KeyFileError("json", `${path} must hold a JSON object`)
    return value as Json
}

function hexField(obj: Json, name: string, length: number, where: string): Buffer {
    const value = obj[name]
    if (typeof value !== "string" || !/^(?:[0-9a-f]{2})*$/.test(value))
        throw new KeyFileError(name, `${where}.${name} must be lower-case hex`)
    const bytes = Buffer.from(value, "hex")
    if (bytes.length !== length)
        throw new KeyFileError(name, `${where}.${name} must be ${length} bytes`)
    return bytes
}

function signatureAlgorithm(value: unknown, where: string): SignatureAlgorithm {
    if (value === "ecdsa-p256-sha256" || value === "ed25519" || value === "slh-dsa-sha2-128s")
        return value
    throw new KeyFileError("algorithm", `${where}.algorithm is not a known signature algorithm`)
}

/** The identity algorithm must match its key list exactly: one key, or the hybrid pair. */
function checkIdentity(
    algorithm: unknown,
    keys: SignatureAlgorithm[],
    path: string
): IdentityAlgorithm {
    const list = keys.join(",")
    if (algorithm === "ecdsa-p256-sha256" && list === "ecdsa-p256-sha256") return algorithm
    if (algorithm === "ed25519" && list === "ed25519") return algorithm
    if (algorithm === "hybrid" && list === "ecdsa-p256-sha256,slh-dsa-sha2-128s") return algorithm
    throw new KeyFileError(
        "algorithm",
        `${path}: "algorithm" must be ecdsa-p256-sha256, ed25519 or hybrid and match "keys"`
    )
}

function keyList(obj: Json, path: string): Json[] {
    const keys = obj["keys"]
    if (!Array.isArray(keys) || keys.length < 1 || keys.length > 2)
        throw new KeyFileError("keys", `${path}: "keys" must be a list of 1 or 2 keys`)
    for (const k of keys)
        if (k === null || typeof k !== "object" || Array.isArray(k))
            throw new KeyFileError("keys", `${path}: each key must be an object`)
    return keys as Json[]
}

function anchorOf(keys: PublicKeyEntry[], path: string): Buffer {
    try {
        return releaseAnchor(keys)
    } catch (err) {
        const check = err instanceof AnchorError ? err.check : "anchor"
        throw new KeyFileError("keys", `${path}: keys do not form an identity (${check})`)
    }
}

/** Reads and validates a `release.pub`; the stored anchor must match the keys. */
export function readPublicKeyFile(path: string): ReleasePublicKey {
    const obj = readJson(path)
    if (obj["format"] !== PUBLIC_FORMAT)
        throw new KeyFileError("format", `${path} is not a ${PUBLIC_FORMAT} file`)
    const keys: PublicKeyEntry[] = keyList(obj, path).map((k, i) => {
        const algorithm = signatureAlgorithm(k["algorithm"], `keys[${i}]`)
        const key = hexField(k, "publicKey", publicKeyLength(algorithm), `keys[${i}]`)
        return { algorithm: algorithm, key: key }
    })
    const algorithm = checkIdentity(obj["algorithm"], keys.map((k) => k.algorithm), path)
    const anchor = anchorOf(keys, path)
    const stated = hexField(obj, "anchor", 32, path)
    if (!stated.equals(anchor))
        throw new KeyFileError("anchor", `${path}: "anchor" does not match its keys`)
    return { algorithm: algorithm, keys: keys, anchor: anchor }
}

/** Reads and validates a `release.key`; each public key must derive from its private key. */
export function readPrivateKeyFile(path: string): ReleasePrivateKey {
    const obj = readJson(path)
    if (obj["format"] !== PRIVATE_FORMAT)
        throw new KeyFileError("format", `${path} is not a ${PRIVATE_FORMAT} file`)
    const keys: PrivateKeyEntry[] = keyList(obj, path).map((k, i) => {
        const where = `keys[${i}]`
        const algorithm = signatureAlgorithm(k["algorithm"], where)
        const privateKey = hexField(k, "privateKey", PRIVATE_KEY_LENGTH[algorithm], where)
        const publicKey = hexField(k, "publicKey", publicKeyLength(algorithm), where)
        let derived: Buffer
        try {
            derived = derivePublicKey(algorithm, privateKey)
        } catch {
            throw new KeyFileError("privateKey", `${path}: ${where}.privateKey is not a valid key`)
        }
        if (!derived.equals(publicKey))
            throw new KeyFileError(
                "publicKey",
                `${path}: ${where}.publicKey does not match privateKey`
            )
        return { algorithm: algorithm, privateKey: privateKey, publicKey: publicKey }
    })
    const algorithm = checkIdentity(obj["algorithm"], keys.map((k) => k.algorithm), path)
    const anchor = anchorOf(publicEntries(keys), path)
    return { algorithm: algorithm, keys: keys, anchor: anchor }
}

function publicEntries(keys: PrivateKeyEntry[]): PublicKeyEntry[] {
    return keys.map((k) => ({ algorithm: k.algorithm, key: k.publicKey }))
}

/** Only the public half of an identity, e.g. to write or print a release.pub. */
export function publicPart(key: ReleasePrivateKey): ReleasePublicKey {
    return {
        algorithm: key.algorithm,
        keys: publicEntries(key.keys),
        anchor: key.anchor,
    }
}

/** The JSON text of a release.pub for an identity. */
export function publicKeyFileText(key: ReleasePublicKey): string {
    return publicJson(key)
}
