/**
 * The DeviceScript board (hal/board.ts; GP-TM-08): crypto (with SLH-DSA verification when the
 * portable verifier is handed in), clock and RNG always; TLS MQTT
 * where the runtime has a TLS client; sealed settings only with a key source outside
 * settings. Flash, OTP, secure element, watchdog, reset, tamper, button and console are
 * absent, and `requireBoardCapability` answers each with UnsupportedError and its reason
 * from capabilities.ts, so callers refuse instead of running weaker.
 */

import * as ds from "@devicescript/core"
import { Board } from "../board"
import { UnsupportedError } from "../errors"
import { checkRuntimeArch, DeviceTarget, unsupportedReason } from "./capabilities"
import { DeviceClock, DeviceRng } from "./clock"
import { DeviceCrypto, PortableVerifier } from "./crypto"
import { DeviceMqttTransport } from "./mqtt"
import { SealedSettings, SealingKeySource } from "./sealed-settings"
import { DeviceSettingsBackend } from "./settings-backend"

export interface DeviceBoard extends Board {
    readonly clock: DeviceClock
    /** What the runtime this program runs on can do. */
    readonly device: DeviceTarget
    /** Sealed small storage; absent without a sealing key source. */
    readonly settings?: SealedSettings
}

export interface DeviceBoardOptions {
    /** Where the settings sealing key comes from (a secure element); none today. */
    sealingKeys?: SealingKeySource
    /** The portable SLH-DSA verifier (boot/slhdsa.ts), handed in from above the HAL. */
    slhDsa?: PortableVerifier
}

/** The runtime's architecture id: "esp32s3", "rp2040w", ... or "wasm" in the VM. */
export function runtimeArch(): string {
    return ds._dcfgString("archId")
}

/**
 * Assembles the board for profile board `target`. UnsupportedError "board-mismatch" when the
 * runtime is another chip than the build was made for, "device-target" for "sim".
 */
export function createDeviceBoard(target: string, options?: DeviceBoardOptions): DeviceBoard {
    const device = checkRuntimeArch(target, runtimeArch())
    const crypto = new DeviceCrypto(options ? options.slhDsa : undefined)
    const keys = options ? options.sealingKeys : undefined
    return {
        target: target,
        device: device,
        crypto: crypto,
        clock: new DeviceClock(),
        rng: new DeviceRng(device.cryptoRng),
        mqtt: device.tls ? new DeviceMqttTransport() : undefined,
        settings: keys ? new SealedSettings(crypto, keys, new DeviceSettingsBackend()) : undefined,
        flash: undefined,
        otp: undefined,
        secureElement: undefined,
        watchdog: undefined,
        reset: undefined,
        tamper: undefined,
        button: undefined,
        console: undefined,
    }
}

/** The members a caller may ask for by capability name. */
function memberFor(board: DeviceBoard, capability: string): unknown {
    if (capability === "flash") return board.flash
    if (capability === "otp") return board.otp
    if (capability === "secure-element") return board.secureElement
    if (capability === "watchdog") return board.watchdog
    if (capability === "reset") return board.reset
    if (capability === "tamper") return board.tamper
    if (capability === "button") return board.button
    if (capability === "console") return board.console
    if (capability === "mqtt") return board.mqtt
    if (capability === "sealed-settings") return board.settings
    if (capability === "rng-cryptographic") return board.rng.cryptographic ? board.rng : undefined
    return undefined
}

/**
 * Returns nothing when the board backs `capability`; otherwise throws UnsupportedError
 * naming it (unsupportedReason in capabilities.ts says why).
 */
export function requireBoardCapability(board: DeviceBoard, capability: string): void {
    if (memberFor(board, capability) === undefined) throw new UnsupportedError(capability)
}

/** Each capability the board lacks with the reason, for the start-up report. */
export function missingCapabilities(board: DeviceBoard): string[] {
    const names = [
        "flash",
        "otp",
        "secure-element",
        "watchdog",
        "reset",
        "tamper",
        "button",
        "console",
        "mqtt",
        "sealed-settings",
        "rng-cryptographic",
    ]
    const out: string[] = []
    for (let i = 0; i < names.length; i++) {
        if (memberFor(board, names[i]) !== undefined) continue
        const reason = unsupportedReason(board.device.name, names[i])
        out.push(names[i] + ": " + (reason !== null ? reason : "not available"))
    }
    return out
}
