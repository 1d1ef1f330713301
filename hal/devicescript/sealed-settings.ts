/**
 * Sealed small storage over DeviceScript settings (GP-TM-32, GP-TM-35): settings are kept in
 * clear in flash and readable over USB, so every value is sealed with AES-256-CCM under a key
 * that is never in settings (it comes from a SealingKeySource, e.g. a secure element). With no
 * such source the store refuses to exist (UnsupportedError "sealed-settings"). Pure: the
 * backend and crypto are injected, so Node tests and the VM run the same code.
 *
 * Stored value: version (1 byte, 0x01) || nonce (13) || ciphertext || tag (16).
 * Keys: HKDF-SHA-256(root, salt "bulwark-settings-v1", info "enc:"|"nonce:" + name), so a
 * value moved to another name does not open. The nonce is synthetic, the first 13 bytes of
 * HMAC(nonce key, value): no RNG is needed and a nonce repeats only for an identical value.
 */

import { Crypto } from "../crypto"
import { CryptoError, HalError, UnsupportedError } from "../errors"
import { SecureElement } from "../secure-element"

/** DeviceScript's limit for one setting: key, its terminator and value (measured). */
export const SETTING_RECORD_MAX = 232
export const SEALED_VERSION = 1
const NONCE_BYTES = 13
const TAG_BYTES = 16
/** Version byte, nonce and tag added to every value. */
export const SEALED_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
const NAME_MAX = 13
const SALT = "bulwark-settings-v1"

/** Storage codes: "name", "size", "auth" (a value does not open: tampered or moved), "key". */
export class StorageError extends HalError {
    constructor(code: string, message: string) {
        super(code, message)
        this.name = "StorageError"
    }
}

/** Raw settings: DeviceScript's settings service on the device, a table in tests. */
export interface SettingsBackend {
    /** The stored bytes, or null when the key is absent. */
    get(key: string): Promise<Buffer | null>
    set(key: string, value: Buffer): Promise<void>
    remove(key: string): Promise<void>
}

/** Gives the 32-byte root sealing key; it must live outside settings. */
export interface SealingKeySource {
    sealingKey(): Promise<Buffer>
}

/** 1-13 of a-z, 0-9 and '-': DeviceScript's key limit, and never a runtime special key. */
export function checkSettingName(name: string): void {
    if (typeof name !== "string" || name.length < 1 || name.length > NAME_MAX)
        throw new StorageError("name", "setting name must be 1 to 13 characters")
    for (let i = 0; i < name.length; i++) {
        const c = name.charCodeAt(i)
        const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d
        if (!ok) throw new StorageError("name", "setting name must be a-z, 0-9 or '-'")
    }
}

/** Largest value `name` can hold once sealed. */
export function maxSettingValue(name: string): number {
    checkSettingName(name)
    return SETTING_RECORD_MAX - name.length - 1 - SEALED_OVERHEAD
}

function joinBytes(parts: Buffer[]): Buffer {
    let total = 0
    for (let i = 0; i < parts.length; i++) total += parts[i].length
    const out = Buffer.alloc(total)
    let at = 0
    for (let i = 0; i < parts.length; i++) {
        const part = parts[i]
        for (let j = 0; j < part.length; j++) out[at + j] = part[j]
        at += part.length
    }
    return out
}

function deriveKey(crypto: Crypto, root: Buffer, use: string, name: string): Buffer {
    if (!(root instanceof Buffer) || root.length !== 32)
        throw new StorageError("key", "sealing key must be 32 bytes")
    return crypto.hkdf(root, Buffer.from(SALT), Buffer.from(use + ":" + name), 32)
}

/** Seals `value` for setting `name`. StorageError "name" or "size". Deterministic. */
export function sealSetting(crypto: Crypto, root: Buffer, name: string, value: Buffer): Buffer {
    if (!(value instanceof Buffer)) throw new StorageError("size", "value must be a Buffer")
    if (value.length > maxSettingValue(name))
        throw new StorageError("size", "value too large for a setting")
    const nonce = crypto
        .hmacSha256(deriveKey(crypto, root, "nonce", name), [value])
        .slice(0, NONCE_BYTES)
    const key = deriveKey(crypto, root, "enc", name)
    const sealed = crypto.aeadSeal(key, nonce, Buffer.alloc(0), value)
    const version = Buffer.alloc(1)
    version[0] = SEALED_VERSION
    return joinBytes([version, nonce, sealed])
}

/** Opens what sealSetting stored under `name`; StorageError "auth" for anything else. */
export function openSetting(crypto: Crypto, root: Buffer, name: string, stored: Buffer): Buffer {
    checkSettingName(name)
    if (!(stored instanceof Buffer) || stored.length < SEALED_OVERHEAD)
        throw new StorageError("auth", "sealed setting is truncated")
    if (stored[0] !== SEALED_VERSION)
        throw new StorageError("auth", "sealed setting has an unknown version")
    const nonce = stored.slice(1, 1 + NONCE_BYTES)
    const body = stored.slice(1 + NONCE_BYTES, stored.length)
    const key = deriveKey(crypto, root, "enc", name)
    try {
        return crypto.aeadOpen(key, nonce, Buffer.alloc(0), body)
    } catch (e) {
        if (e instanceof CryptoError) throw new StorageError("auth", "sealed setting does not open")
        throw e
    }
}

/**
 * Settings whose values are sealed at rest. Reading a value that was altered, truncated or
 * copied from another name is StorageError "auth", never the altered bytes.
 */
export class SealedSettings {
    private readonly crypto: Crypto
    private readonly keys: SealingKeySource
    private readonly backend: SettingsBackend
    private root: Buffer | null = null

    /** UnsupportedError "sealed-settings" when there is no key source: never store in clear. */
    constructor(crypto: Crypto, keys: SealingKeySource | undefined, backend: SettingsBackend) {
        if (keys === undefined || keys === null) throw new UnsupportedError("sealed-settings")
        this.crypto = crypto
        this.keys = keys
        this.backend = backend
    }

    private async rootKey(): Promise<Buffer> {
        if (this.root === null) this.root = await this.keys.sealingKey()
        return this.root
    }

    async read(name: string): Promise<Buffer | null> {
        checkSettingName(name)
        const stored = await this.backend.get(name)
        if (stored === null || stored.length === 0) return null
        return openSetting(this.crypto, await this.rootKey(), name, stored)
    }

    async write(name: string, value: Buffer): Promise<void> {
        const sealed = sealSetting(this.crypto, await this.rootKey(), name, value)
        await this.backend.set(name, sealed)
    }

    async remove(name: string): Promise<void> {
        checkSettingName(name)
        await this.backend.remove(name)
    }
}

/** A sealing key derived inside a secure element from the secret in `slot`. */
export class SecureElementKeySource implements SealingKeySource {
    private readonly element: SecureElement
    private readonly slot: number

    constructor(element: SecureElement, slot: number) {
        this.element = element
        this.slot = slot
    }

    async sealingKey(): Promise<Buffer> {
        return await this.element.hmac(this.slot, Buffer.from("bulwark-settings-seal-v1"))
    }
}
