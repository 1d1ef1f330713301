/**
 * What each DeviceScript target can back, as data (DESIGN.md section 1; GP-TM-08, GP-TM-39).
 * Pure and free of `@devicescript/*` imports, so Node tests, the build tools and the device
 * share one table. Every capability the device lacks has a stable name (the `capability` of
 * the UnsupportedError callers receive) and the reason, which docs/limits.md repeats.
 */

import { UnsupportedError } from "../errors"

/** A board the device build targets, or "vm": DeviceScript's WASM VM used by the tests. */
export interface DeviceTarget {
    /** Profile board name ("esp32s3", ...) or "vm". */
    name: string
    /** DeviceScript architecture id reported by the runtime (`archId`). */
    arch: string
    /** DeviceScript board id of the runtime firmware to flash and build against. */
    dsBoard: string
    /** `devs flash` family: "esp32" or "rp2040"; "" for the VM. */
    flashFamily: string
    /** The runtime has a TLS client that authenticates the server. */
    tls: boolean
    /** The runtime's random generator is cryptographic. */
    cryptoRng: boolean
}

function target(
    name: string,
    arch: string,
    dsBoard: string,
    flashFamily: string,
    tls: boolean,
    cryptoRng: boolean
): DeviceTarget {
    return {
        name: name,
        arch: arch,
        dsBoard: dsBoard,
        flashFamily: flashFamily,
        tls: tls,
        cryptoRng: cryptoRng,
    }
}

/** The targets, measured on DeviceScript 2.16.4 (DESIGN.md section 1). */
export function deviceTargets(): DeviceTarget[] {
    return [
        target("esp32s3", "esp32s3", "esp32s3_devkit_m", "esp32", true, true),
        target("esp32c3", "esp32c3", "esp32c3_bare", "esp32", true, true),
        target("rp2040w", "rp2040w", "pico_w", "rp2040", false, false),
        // The VM draws randomness from the host and has the runtime's TLS sockets.
        target("vm", "wasm", "", "", true, true),
    ]
}

/**
 * The target for a profile board (or "vm"). UnsupportedError "device-target" for "sim" and
 * for any board DeviceScript does not run on, so a build never guesses a board.
 */
export function deviceTarget(name: string): DeviceTarget {
    const all = deviceTargets()
    for (let i = 0; i < all.length; i++) if (all[i].name === name) return all[i]
    throw new UnsupportedError("device-target")
}

/**
 * Checks that the runtime this program runs on is the one the build was made for: a build
 * for an ESP32 must not claim a TLS client or a cryptographic RNG on an RP2040.
 * The VM ("wasm") runs any build, as a test vehicle. UnsupportedError "board-mismatch".
 */
export function checkRuntimeArch(targetName: string, runtimeArch: string): DeviceTarget {
    const t = deviceTarget(targetName)
    if (runtimeArch === "wasm") return deviceTarget("vm")
    if (runtimeArch !== t.arch) throw new UnsupportedError("board-mismatch")
    return t
}

/** A capability the firmware uses that no DeviceScript target backs, and why. */
export interface DeviceLimit {
    capability: string
    reason: string
}

function limit(capability: string, reason: string): DeviceLimit {
    return { capability: capability, reason: reason }
}

/** Capabilities that are unsupported on every DeviceScript target (docs/limits.md). */
export function deviceLimits(): DeviceLimit[] {
    return [
        limit("flash", "no raw flash partition API; bytecode and settings only"),
        limit("otp", "no eFuse/OTP API; anchors cannot be burnt or read"),
        limit("secure-element", "no ATECC608 driver; keys cannot be held in hardware"),
        limit("watchdog", "no watchdog API in the runtime"),
        limit("reset", "no reset-cause API; a reset reason cannot be kept"),
        limit("tamper", "no tamper input defined by the runtime"),
        limit("button", "presence button pins are product-specific; not wired"),
        limit("console", "the USB channel is DeviceScript's unauthenticated devtools link"),
        limit("image-install", "bytecode is deployed over USB without a signature check"),
        limit("signature:ecdsa-p256-sha256", "no native ECDSA; bytecode takes minutes"),
        limit("signature:ed25519", "no native Ed25519; bytecode takes minutes"),
        limit("aead-aad", "native AES-CCM takes no associated data"),
        limit("mqtt-client-certificate", "the TLS client presents no certificate"),
        limit("mqtt-ca-pinning", "the TLS client trusts its built-in CA bundle only"),
        limit("sealed-settings", "no key store outside settings to seal them with"),
    ]
}

/** Capabilities a given target lacks on top of deviceLimits(). */
export function targetLimits(t: DeviceTarget): DeviceLimit[] {
    const out: DeviceLimit[] = []
    if (!t.tls) out.push(limit("mqtt", "the runtime has no TLS client; no plaintext fallback"))
    if (!t.cryptoRng) out.push(limit("rng-cryptographic", "the runtime RNG is not cryptographic"))
    return out
}

/**
 * Why `capability` is unsupported on `targetName`, or null when the target backs it.
 * Callers that need the capability throw UnsupportedError(capability) on a non-null answer.
 */
export function unsupportedReason(targetName: string, capability: string): string | null {
    const t = deviceTarget(targetName)
    const all = deviceLimits()
    const extra = targetLimits(t)
    for (let i = 0; i < extra.length; i++) all.push(extra[i])
    for (let i = 0; i < all.length; i++) if (all[i].capability === capability) return all[i].reason
    return null
}

/** Throws UnsupportedError(capability) unless `targetName` backs it. */
export function requireDeviceCapability(targetName: string, capability: string): void {
    if (unsupportedReason(targetName, capability) !== null)
        throw new UnsupportedError(capability)
}
