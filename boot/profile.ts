/**
 * The device profile (`devs.config.json`): board, partition table, boot and update policy,
 * transport, rate limits and optional services. Validated field by field at load; a bad
 * file is a ProfileError naming the field, and settings that weaken security need an
 * explicit override listed in `security.overrides` (GP-TM-08).
 */

import { isHexText, isUint } from "./bytes"

export class ProfileError extends Error {
    readonly field: string
    constructor(field: string, message: string) {
        super("device profile: " + field + ": " + message)
        this.name = "ProfileError"
        this.field = field
    }
}

export interface PartitionSpec {
    name: string
    size: number
}

export type SignaturePolicy = "classical" | "hybrid" | "pq-only"

export interface RateLimit {
    /** Tokens added per second. */
    ratePerSec: number
    /** Bucket size: the largest burst allowed. */
    burst: number
}

export interface Profile {
    profileVersion: number
    board: string
    deviceClass: string
    flash: { sectorSize: number; writeAlign: number; partitions: PartitionSpec[] }
    boot: { trialAttempts: number; signaturePolicy: SignaturePolicy }
    transport: {
        brokerHost: string
        brokerPort: number
        keepAliveSec: number
        maxPayload: number
        queueLimit: number
        backoffMinMs: number
        backoffMaxMs: number
    }
    update: {
        automatic: boolean
        /** UTC hours [start, end) in which automatic installs may run. */
        windowStartHour: number
        windowEndHour: number
        chunkSize: number
        confirmTimeoutMs: number
    }
    rateLimits: {
        commands: RateLimit
        publishes: RateLimit
        logins: RateLimit
        updates: RateLimit
    }
    services: { console: boolean; debugPort: boolean }
    security: {
        overrides: string[]
        /** Operator public keys (hex, 65-byte P-256) allowed to request audit exports. */
        operatorKeys?: string[]
    }
}

export const BOARDS = ["sim", "esp32s3", "esp32c3", "rp2040w"]
export const REQUIRED_PARTITIONS = ["boot-state", "slot-a", "slot-b"]
const SIGNATURE_POLICIES = ["classical", "hybrid", "pq-only"]
/** Services that weaken the attack surface; each needs a matching override to be enabled. */
const GUARDED_SERVICES = ["console", "debugPort"]

type Json = { [key: string]: any }

function objectAt(parent: Json, key: string, path: string): Json {
    const value = parent[key]
    if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new ProfileError(path, "must be an object")
    return value
}

function onlyKeys(obj: Json, allowed: string[], path: string): void {
    const keys = Object.keys(obj)
    for (let i = 0; i < keys.length; i++) {
        if (allowed.indexOf(keys[i]) < 0)
            throw new ProfileError(path + "." + keys[i], "unknown field")
    }
}

function uintAt(obj: Json, key: string, path: string, min: number, max: number): number {
    const value = obj[key]
    if (!isUint(value, max) || value < min)
        throw new ProfileError(path, "must be an integer from " + min + " to " + max)
    return value
}

function boolAt(obj: Json, key: string, path: string): boolean {
    const value = obj[key]
    if (typeof value !== "boolean") throw new ProfileError(path, "must be true or false")
    return value
}

function isNameChar(code: number): boolean {
    return (
        (code >= 0x61 && code <= 0x7a) ||
        (code >= 0x30 && code <= 0x39) ||
        code === 0x2d ||
        code === 0x2e
    )
}

/** Lower-case letters, digits, '-' and '.', 1 to 64 characters. */
export function isSafeName(value: unknown): boolean {
    if (typeof value !== "string" || value.length < 1 || value.length > 64) return false
    for (let i = 0; i < value.length; i++) if (!isNameChar(value.charCodeAt(i))) return false
    return true
}

function nameAt(obj: Json, key: string, path: string): string {
    const value = obj[key]
    if (!isSafeName(value))
        throw new ProfileError(path, "must be 1-64 of a-z, 0-9, '-' and '.'")
    return value
}

function hostAt(obj: Json, key: string, path: string): string {
    const value = obj[key]
    if (typeof value !== "string" || value.length < 1 || value.length > 253)
        throw new ProfileError(path, "must be a host name")
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (!(isNameChar(c) || (c >= 0x41 && c <= 0x5a)))
            throw new ProfileError(path, "must be a host name")
    }
    return value
}

function parseRate(obj: Json, key: string, path: string): RateLimit {
    const o = objectAt(obj, key, path)
    onlyKeys(o, ["ratePerSec", "burst"], path)
    return {
        ratePerSec: uintAt(o, "ratePerSec", path + ".ratePerSec", 1, 100000),
        burst: uintAt(o, "burst", path + ".burst", 1, 100000),
    }
}

function parsePartitions(flash: Json, sectorSize: number): PartitionSpec[] {
    const list = flash["partitions"]
    if (!Array.isArray(list) || list.length === 0)
        throw new ProfileError("flash.partitions", "must be a non-empty list")
    const out: PartitionSpec[] = []
    for (let i = 0; i < list.length; i++) {
        const path = "flash.partitions[" + i + "]"
        const entry = list[i]
        if (entry === null || typeof entry !== "object" || Array.isArray(entry))
            throw new ProfileError(path, "must be an object")
        onlyKeys(entry, ["name", "size"], path)
        const name = nameAt(entry, "name", path + ".name")
        const size = uintAt(entry, "size", path + ".size", sectorSize, 0x4000000)
        if (Math.floor(size / sectorSize) * sectorSize !== size)
            throw new ProfileError(path + ".size", "must be a multiple of flash.sectorSize")
        for (let j = 0; j < out.length; j++)
            if (out[j].name === name) throw new ProfileError(path + ".name", "duplicate")
        out.push({ name: name, size: size })
    }
    for (let i = 0; i < REQUIRED_PARTITIONS.length; i++) {
        let found = false
        for (let j = 0; j < out.length; j++) if (out[j].name === REQUIRED_PARTITIONS[i]) found = true
        if (!found)
            throw new ProfileError("flash.partitions", "missing " + REQUIRED_PARTITIONS[i])
    }
    return out
}

/**
 * Validates a parsed `devs.config.json`. Throws ProfileError naming the first bad field.
 * Pure: no I/O, so the host loader and the device share it.
 */
export function parseProfile(json: unknown): Profile {
    if (json === null || typeof json !== "object" || Array.isArray(json))
        throw new ProfileError("(root)", "must be an object")
    const root = json as Json
    onlyKeys(
        root,
        [
            "$comment",
            "profileVersion",
            "board",
            "deviceClass",
            "flash",
            "boot",
            "transport",
            "update",
            "rateLimits",
            "services",
            "security",
        ],
        "(root)"
    )
    if (root["profileVersion"] !== 1) throw new ProfileError("profileVersion", "must be 1")
    const board = root["board"]
    if (BOARDS.indexOf(board) < 0)
        throw new ProfileError("board", "must be one of " + BOARDS.join(", "))
    const deviceClass = nameAt(root, "deviceClass", "deviceClass")

    const flash = objectAt(root, "flash", "flash")
    onlyKeys(flash, ["sectorSize", "writeAlign", "partitions"], "flash")
    const sectorSize = uintAt(flash, "sectorSize", "flash.sectorSize", 256, 65536)
    const writeAlign = uintAt(flash, "writeAlign", "flash.writeAlign", 1, 256)
    if (Math.floor(sectorSize / writeAlign) * writeAlign !== sectorSize)
        throw new ProfileError("flash.writeAlign", "must divide flash.sectorSize")
    const partitions = parsePartitions(flash, sectorSize)

    const boot = objectAt(root, "boot", "boot")
    onlyKeys(boot, ["trialAttempts", "signaturePolicy"], "boot")
    const trialAttempts = uintAt(boot, "trialAttempts", "boot.trialAttempts", 1, 10)
    const signaturePolicy = boot["signaturePolicy"]
    if (SIGNATURE_POLICIES.indexOf(signaturePolicy) < 0)
        throw new ProfileError("boot.signaturePolicy", "must be classical, hybrid or pq-only")

    const t = objectAt(root, "transport", "transport")
    onlyKeys(
        t,
        [
            "brokerHost",
            "brokerPort",
            "keepAliveSec",
            "maxPayload",
            "queueLimit",
            "backoffMinMs",
            "backoffMaxMs",
        ],
        "transport"
    )
    const transport = {
        brokerHost: hostAt(t, "brokerHost", "transport.brokerHost"),
        brokerPort: uintAt(t, "brokerPort", "transport.brokerPort", 1, 65535),
        keepAliveSec: uintAt(t, "keepAliveSec", "transport.keepAliveSec", 5, 3600),
        maxPayload: uintAt(t, "maxPayload", "transport.maxPayload", 64, 262144),
        queueLimit: uintAt(t, "queueLimit", "transport.queueLimit", 1, 10000),
        backoffMinMs: uintAt(t, "backoffMinMs", "transport.backoffMinMs", 10, 600000),
        backoffMaxMs: uintAt(t, "backoffMaxMs", "transport.backoffMaxMs", 10, 3600000),
    }
    if (transport.backoffMaxMs < transport.backoffMinMs)
        throw new ProfileError("transport.backoffMaxMs", "must not be below backoffMinMs")

    const u = objectAt(root, "update", "update")
    onlyKeys(
        u,
        ["automatic", "windowStartHour", "windowEndHour", "chunkSize", "confirmTimeoutMs"],
        "update"
    )
    const update = {
        automatic: boolAt(u, "automatic", "update.automatic"),
        windowStartHour: uintAt(u, "windowStartHour", "update.windowStartHour", 0, 23),
        windowEndHour: uintAt(u, "windowEndHour", "update.windowEndHour", 1, 24),
        chunkSize: uintAt(u, "chunkSize", "update.chunkSize", 256, 65536),
        confirmTimeoutMs: uintAt(u, "confirmTimeoutMs", "update.confirmTimeoutMs", 1000, 3600000),
    }
    if (Math.floor(update.chunkSize / writeAlign) * writeAlign !== update.chunkSize)
        throw new ProfileError("update.chunkSize", "must be a multiple of flash.writeAlign")

    const r = objectAt(root, "rateLimits", "rateLimits")
    onlyKeys(r, ["commands", "publishes", "logins", "updates"], "rateLimits")
    const rateLimits = {
        commands: parseRate(r, "commands", "rateLimits.commands"),
        publishes: parseRate(r, "publishes", "rateLimits.publishes"),
        logins: parseRate(r, "logins", "rateLimits.logins"),
        updates: parseRate(r, "updates", "rateLimits.updates"),
    }

    const sec = objectAt(root, "security", "security")
    onlyKeys(sec, ["overrides", "operatorKeys"], "security")
    const operatorKeys = parseOperatorKeys(sec)
    const overridesRaw = sec["overrides"]
    if (!Array.isArray(overridesRaw)) throw new ProfileError("security.overrides", "must be a list")
    const overrides: string[] = []
    for (let i = 0; i < overridesRaw.length; i++) {
        if (GUARDED_SERVICES.indexOf(overridesRaw[i]) < 0)
            throw new ProfileError("security.overrides[" + i + "]", "unknown override")
        overrides.push(overridesRaw[i])
    }

    const s = objectAt(root, "services", "services")
    onlyKeys(s, GUARDED_SERVICES, "services")
    const services = {
        console: boolAt(s, "console", "services.console"),
        debugPort: boolAt(s, "debugPort", "services.debugPort"),
    }
    for (let i = 0; i < GUARDED_SERVICES.length; i++) {
        const name = GUARDED_SERVICES[i]
        const enabled = name === "console" ? services.console : services.debugPort
        if (enabled && overrides.indexOf(name) < 0)
            throw new ProfileError(
                "services." + name,
                "weakens security; list \"" + name + "\" in security.overrides to enable it"
            )
    }

    return {
        profileVersion: 1,
        board: board,
        deviceClass: deviceClass,
        flash: { sectorSize: sectorSize, writeAlign: writeAlign, partitions: partitions },
        boot: { trialAttempts: trialAttempts, signaturePolicy: signaturePolicy },
        transport: transport,
        update: update,
        rateLimits: rateLimits,
        services: services,
        security: { overrides: overrides, operatorKeys: operatorKeys },
    }
}

/** Optional list of P-256 public keys, uncompressed (130 lower-case hex digits, "04..."). */
function parseOperatorKeys(sec: Json): string[] {
    const raw = sec["operatorKeys"]
    if (raw === undefined) return []
    if (!Array.isArray(raw) || raw.length > 16)
        throw new ProfileError("security.operatorKeys", "must be a list of at most 16 keys")
    const out: string[] = []
    for (let i = 0; i < raw.length; i++) {
        const key = raw[i]
        if (!isHexText(key, 65) || key.slice(0, 2) !== "04")
            throw new ProfileError(
                "security.operatorKeys[" + i + "]",
                "must be an uncompressed P-256 public key in hex"
            )
        out.push(key)
    }
    return out
}
