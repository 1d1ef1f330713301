/**
 * Provisioning (DESIGN.md section 5; GP-TM-09, GP-TM-21, GP-TM-35, GP-TM-49): the device makes
 * its key pair inside its secure element, the fleet CA certifies the public half, the
 * certificate goes onto the device's identity partition, and the fleet registry records the
 * device. Each device gets its own key and a random one-time setup code, shown once.
 */

import { createHash } from "node:crypto"
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { isSafeName } from "../boot/profile"
import { SecureElementError } from "../hal/errors"
import { SE_SLOT_IDENTITY } from "../hal/secure-element"
import {
    DeviceIdentity,
    PARTITION_IDENTITY,
    SETUP_CODE_ITERATIONS,
    SETUP_CODE_SALT_LENGTH,
    deviceIdFromPublicKey,
    formatSetupCode,
    hashSetupCode,
    readIdentity,
    writeIdentity,
} from "../src/identity"
import { SimBoard, SimBoardError } from "../sim/board"
import { RefusedError, UsageError } from "./args"
import { FleetCa, IssuedCertificate, OPERATOR_PREFIX, Validity } from "./ca"
import { issueDeviceCertificate, loadCa } from "./ca"

export const REGISTRY_FILE = "registry.json"
const REGISTRY_FORMAT = "bulwark-fleet-registry"

export interface RegistryDevice {
    id: string
    /** SHA-256 of the 65-byte public key, hex. */
    publicKeySha256: string
    /**
     * The 65-byte uncompressed identity public key, hex (130 digits): the key the device's
     * signed status reports verify with (docs/update.md). Absent in registries written
     * before it existed; a renewal (bench or online) fills it in.
     */
    publicKey?: string
    certSerial: string
    notAfter: string
    provisionedAt: string
    /** Serials of certificates this device held before a renewal. */
    previousSerials: string[]
    revoked: boolean
}

export interface RegistryOperator {
    name: string
    certSerial: string
    notAfter: string
    /** Set by `ca revoke-operator`; absent in registries written before it existed. */
    revoked?: boolean
    /** Serials of certificates this name held before a re-issue after revocation. */
    previousSerials?: string[]
}

export interface Registry {
    format: string
    version: 1
    devices: RegistryDevice[]
    operators: RegistryOperator[]
    /** Serials the brokers refuse (sim/broker.ts reads this list at each connection). */
    revokedSerials: string[]
    /** When each revoked serial was first revoked (ISO 8601): the CRL's revocationDate. */
    revokedAt?: Record<string, string>
    /** Number of the last CRL `ca crl` signed (RFC 5280 section 5.2.3); absent before one. */
    crlNumber?: number
}

export interface ProvisionResult {
    ok: true
    deviceId: string
    certSerial: string
    notAfter: string
    publicKeySha256: string
    /** Shown once; only a salted slow hash of it stays on the device. */
    setupCode: string
}

export interface ProvisionOptions {
    devDir: string
    caDir: string
    id?: string
    validity?: Validity
    /** PBKDF2 rounds of the setup-code hash (tests lower it; never below 1000). */
    iterations?: number
}

function emptyRegistry(): Registry {
    return { format: REGISTRY_FORMAT, version: 1, devices: [], operators: [], revokedSerials: [] }
}

/** Reads CA DIR/registry.json; a missing file is an empty registry, a bad one a UsageError. */
export function readRegistry(caDir: string): Registry {
    let text: string
    try {
        text = readFileSync(join(caDir, REGISTRY_FILE), "utf8")
    } catch {
        return emptyRegistry()
    }
    let r: Registry
    try {
        r = JSON.parse(text)
    } catch {
        throw new UsageError(`${join(caDir, REGISTRY_FILE)}: not JSON`)
    }
    if (r.format !== REGISTRY_FORMAT || r.version !== 1 || !Array.isArray(r.devices) ||
        !Array.isArray(r.operators) || !Array.isArray(r.revokedSerials) ||
        !revocationFieldsValid(r))
        throw new UsageError(`${join(caDir, REGISTRY_FILE)}: not a fleet registry`)
    return r
}

/** The optional revocation fields, when present, have the types the CRL needs. */
function revocationFieldsValid(r: Registry): boolean {
    if (!r.revokedSerials.every((s) => typeof s === "string")) return false
    if (r.crlNumber !== undefined && !(Number.isSafeInteger(r.crlNumber) && r.crlNumber >= 0))
        return false
    if (r.revokedAt === undefined) return true
    if (typeof r.revokedAt !== "object" || r.revokedAt === null || Array.isArray(r.revokedAt))
        return false
    return Object.values(r.revokedAt).every((d) => typeof d === "string")
}

/** Writes the registry atomically (temp file + rename); callers hold the registry lock. */
export function writeRegistry(caDir: string, registry: Registry): void {
    const path = join(caDir, REGISTRY_FILE)
    writeFileSync(path + ".tmp", JSON.stringify(registry, null, 2) + "\n", { mode: 0o644 })
    renameSync(path + ".tmp", path)
}

/**
 * Runs `change` on the registry under an exclusive lock file, so two provisioning runs on
 * one CA cannot lose each other's entries; writes the result atomically.
 */
export async function updateRegistry<T>(
    caDir: string,
    change: (r: Registry) => Promise<T>
): Promise<T> {
    const lock = join(caDir, REGISTRY_FILE + ".lock")
    let fd: number
    try {
        fd = openSync(lock, "wx")
    } catch {
        throw new RefusedError(
            `${lock} exists: another run holds the registry (remove it if stale)`
        )
    }
    try {
        const registry = readRegistry(caDir)
        const result = await change(registry)
        writeRegistry(caDir, registry)
        return result
    } finally {
        closeSync(fd)
        rmSync(lock, { force: true })
    }
}

async function openBoard(devDir: string): Promise<SimBoard> {
    try {
        return await SimBoard.open(devDir)
    } catch (err) {
        if (err instanceof SimBoardError) throw new UsageError(`${devDir}: ${err.message}`)
        throw err
    }
}

async function hasIdentityKey(board: SimBoard): Promise<boolean> {
    try {
        await board.secureElement.publicKey(SE_SLOT_IDENTITY)
        return true
    } catch (err) {
        if (err instanceof SecureElementError && err.code === "empty") return false
        throw err
    }
}

function identityPartition(board: SimBoard) {
    try {
        return board.flash.partition(PARTITION_IDENTITY)
    } catch {
        throw new UsageError(`the device profile has no "${PARTITION_IDENTITY}" partition`)
    }
}

function checkIterations(value: number | undefined): number {
    const n = value ?? SETUP_CODE_ITERATIONS
    if (!Number.isInteger(n) || n < 1000) throw new UsageError("iterations must be at least 1000")
    return n
}

/**
 * Provisions the sim device in `devDir` with the fleet CA of `caDir`. Verify first: a device
 * that already has an identity key, an id already in the registry, or a board without a
 * cryptographic RNG is refused before anything is written.
 */
export async function provision(options: ProvisionOptions): Promise<ProvisionResult> {
    const iterations = checkIterations(options.iterations)
    const id = options.id
    if (id !== undefined && (!isSafeName(id) || id.startsWith(OPERATOR_PREFIX)))
        throw new UsageError("--id must be 1-64 of a-z, 0-9, '-' and '.'")
    const ca = await loadCa(options.caDir)
    const board = await openBoard(options.devDir)
    try {
        return await updateRegistry(options.caDir, (registry) =>
            provisionBoard(board, ca, registry, options.id, options.validity, iterations)
        )
    } finally {
        board.close()
    }
}

async function provisionBoard(
    board: SimBoard,
    ca: FleetCa,
    registry: Registry,
    wantedId: string | undefined,
    validity: Validity | undefined,
    iterations: number
): Promise<ProvisionResult> {
    const partition = identityPartition(board)
    if (await hasIdentityKey(board))
        throw new RefusedError(
            "device already provisioned: its secure element holds an identity key"
        )
    if (!board.rng.cryptographic) throw new RefusedError("the board's RNG is not cryptographic")
    if (wantedId !== undefined && registry.devices.some((d) => d.id === wantedId))
        throw new RefusedError(`device id ${wantedId} is already in the fleet registry`)

    const se = board.secureElement
    const publicKey = await se.generateKey(SE_SLOT_IDENTITY)
    const deviceId = wantedId ?? deviceIdFromPublicKey(board.crypto, publicKey)
    const keyDigest = board.crypto.sha256([publicKey]).toString("hex")
    if (registry.devices.some((d) => d.id === deviceId || d.publicKeySha256 === keyDigest)) {
        await se.clearSlot(SE_SLOT_IDENTITY)
        throw new RefusedError(`device id ${deviceId} or its key is already in the fleet registry`)
    }

    const cert = await issueDeviceCertificate(ca, deviceId, publicKey, validity)
    const setupCode = formatSetupCode(await se.random(10))
    const salt = await se.random(SETUP_CODE_SALT_LENGTH)
    const identity: DeviceIdentity = {
        deviceId,
        certificatePem: cert.certPem,
        caPem: ca.certPem,
        setupCode: await hashSetupCode(board.crypto, board.clock, setupCode, salt, iterations),
    }
    // The registry learns of the certificate before the device holds it: a run cut short
    // leaves a registered (revocable) certificate, never a valid one nobody knows of.
    registry.devices.push({
        id: deviceId,
        publicKeySha256: keyDigest,
        publicKey: publicKey.toString("hex"),
        certSerial: cert.serial,
        notAfter: cert.notAfter,
        provisionedAt: new Date().toISOString(),
        previousSerials: [],
        revoked: false,
    })
    writeRegistry(ca.dir, registry)
    await writeIdentity(board.crypto, se, partition, identity)
    return {
        ok: true,
        deviceId,
        certSerial: cert.serial,
        notAfter: cert.notAfter,
        publicKeySha256: keyDigest,
        setupCode,
    }
}

/**
 * The identity public keys the registry holds for `ids` (status reports verify with them;
 * docs/update.md), and the ids it holds none for: not registered, or registered before
 * keys were kept. A stored key whose SHA-256 is not the entry's publicKeySha256 is a
 * UsageError: the registry is not to be trusted.
 */
export function registryDeviceKeys(
    registry: Registry,
    ids: string[]
): { keys: Record<string, Buffer>; missing: string[] } {
    const keys: Record<string, Buffer> = {}
    const missing: string[] = []
    for (const id of ids) {
        const entry = registry.devices.find((d) => d.id === id)
        if (!entry || entry.publicKey === undefined) {
            missing.push(id)
            continue
        }
        const key = typeof entry.publicKey === "string" && /^04[0-9a-f]{128}$/.test(entry.publicKey)
            ? Buffer.from(entry.publicKey, "hex")
            : null
        if (key === null || createHash("sha256").update(key).digest("hex") !== entry.publicKeySha256)
            throw new UsageError(`fleet registry: the public key of ${id} does not match its publicKeySha256`)
        keys[id] = key
    }
    return { keys, missing }
}

export interface RenewResult {
    ok: true
    deviceId: string
    certSerial: string
    notAfter: string
}

/**
 * The registry side of every renewal (on the bench and over the network): refused unless
 * `publicKey` is the key registered for `deviceId` and the device is not revoked; issues a
 * certificate for that same key and records it, the old serial under previousSerials. The
 * caller writes the registry (under its lock) before the device receives the certificate.
 */
export async function renewRegistered(
    ca: FleetCa,
    registry: Registry,
    deviceId: string,
    publicKey: Buffer,
    validity?: Validity
): Promise<IssuedCertificate> {
    const keyDigest = createHash("sha256").update(publicKey).digest("hex")
    const entry = registry.devices.find((d) => d.id === deviceId)
    if (!entry || entry.publicKeySha256 !== keyDigest)
        throw new RefusedError(`device ${deviceId} is not registered with this key`)
    if (entry.revoked) throw new RefusedError(`device ${deviceId} is revoked`)
    const cert = await issueDeviceCertificate(ca, deviceId, publicKey, validity)
    // The key matched publicKeySha256: a registry written before keys were kept learns it.
    entry.publicKey = publicKey.toString("hex")
    entry.previousSerials.push(entry.certSerial)
    entry.certSerial = cert.serial
    entry.notAfter = cert.notAfter
    return cert
}

/**
 * Issues a fresh certificate for the same SE key (renewal before the short validity runs
 * out) and stores it on the device. Refused unless the device's key is the registered one.
 */
export async function renew(
    devDir: string,
    caDir: string,
    validity?: Validity
): Promise<RenewResult> {
    const ca = await loadCa(caDir)
    const board = await openBoard(devDir)
    try {
        return await updateRegistry(caDir, async (registry) => {
            const partition = identityPartition(board)
            const se = board.secureElement
            const current = await readIdentity(board.crypto, se, partition)
            if (current === null) throw new RefusedError("device is not provisioned")
            const publicKey = await se.publicKey(SE_SLOT_IDENTITY)
            const cert = await renewRegistered(ca, registry, current.deviceId, publicKey, validity)
            writeRegistry(caDir, registry)
            const renewed = { ...current, certificatePem: cert.certPem }
            await writeIdentity(board.crypto, se, partition, renewed)
            return {
                ok: true as const,
                deviceId: current.deviceId,
                certSerial: cert.serial,
                notAfter: cert.notAfter,
            }
        })
    } finally {
        board.close()
    }
}

/** Puts `serials` on the refusal list, each with the time it was first revoked. */
function addRevoked(registry: Registry, serials: string[], when: string): void {
    const at = registry.revokedAt ?? {}
    for (const s of serials) {
        const key = s.toLowerCase()
        if (!registry.revokedSerials.some((r) => r.toLowerCase() === key))
            registry.revokedSerials.push(s)
        if (at[key] === undefined) at[key] = when
    }
    registry.revokedAt = at
}

/**
 * Marks a device revoked: every certificate it ever held goes on the brokers' refusal list
 * and into the next CRL (`ca crl`).
 */
export async function revoke(
    caDir: string,
    deviceId: string
): Promise<{ ok: true; deviceId: string; serials: string[] }> {
    return updateRegistry(caDir, async (registry) => {
        const entry = registry.devices.find((d) => d.id === deviceId)
        if (!entry) throw new UsageError(`device ${deviceId} is not in the fleet registry`)
        entry.revoked = true
        const serials = [entry.certSerial, ...entry.previousSerials]
        addRevoked(registry, serials, new Date().toISOString())
        return { ok: true as const, deviceId, serials }
    })
}

/**
 * Retires the certificates a device held before its current one (after a renewal): they go
 * on the refusal list and into the next CRL, while the device and its current certificate
 * stay valid. Run it once the device has confirmed the renewed certificate: a device still
 * on trial with it falls back to the previous one if the broker refuses the new one.
 */
export async function revokeSuperseded(
    caDir: string,
    deviceId: string
): Promise<{ ok: true; deviceId: string; serials: string[]; current: string }> {
    return updateRegistry(caDir, async (registry) => {
        const entry = registry.devices.find((d) => d.id === deviceId)
        if (!entry) throw new UsageError(`device ${deviceId} is not in the fleet registry`)
        const current = entry.certSerial.toLowerCase()
        const serials = entry.previousSerials.filter((s) => s.toLowerCase() !== current)
        addRevoked(registry, serials, new Date().toISOString())
        return { ok: true as const, deviceId, serials, current: entry.certSerial }
    })
}

export interface RevokeOperatorResult {
    ok: true
    name: string
    /** The certificate subject's CN, "operator:NAME" (the Mosquitto user name). */
    subject: string
    serials: string[]
}

/**
 * Revokes the certificate `ca issue-operator` made for operator `name` (and any it held
 * before): the embedded broker refuses it at the next connection, Mosquitto once it reads
 * the next CRL. An unknown name is a UsageError and leaves the registry as it was.
 */
export async function revokeOperator(caDir: string, name: string): Promise<RevokeOperatorResult> {
    return updateRegistry(caDir, async (registry) => {
        const entry = registry.operators.find((o) => o.name === name)
        if (!entry) throw new UsageError(`operator ${name} is not in the fleet registry`)
        entry.revoked = true
        const serials = [entry.certSerial, ...(entry.previousSerials ?? [])]
        addRevoked(registry, serials, new Date().toISOString())
        return { ok: true as const, name, subject: OPERATOR_PREFIX + name, serials }
    })
}
