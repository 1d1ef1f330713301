/**
 * The board: every contract one target provides, in one object handed to the boot stub and
 * the app. Optional members are capabilities a target may lack; code that needs one asks
 * for it with `requireCapability` and refuses to run without it.
 */

import { Clock, Reset, Rng, Watchdog } from "./clock"
import { Crypto } from "./crypto"
import { UnsupportedError } from "./errors"
import { Flash } from "./flash"
import { Button, Console, Tamper } from "./local"
import { MqttTransport } from "./mqtt"
import { Otp } from "./otp"
import { SecureElement } from "./secure-element"

export interface Board {
    /** "sim", "esp32s3", "esp32c3", "rp2040w", ... */
    readonly target: string
    readonly crypto: Crypto
    readonly clock: Clock
    readonly rng: Rng
    readonly flash?: Flash
    readonly otp?: Otp
    readonly secureElement?: SecureElement
    readonly watchdog?: Watchdog
    readonly reset?: Reset
    readonly mqtt?: MqttTransport
    readonly tamper?: Tamper
    readonly button?: Button
    readonly console?: Console
}

/** Returns the capability or throws UnsupportedError naming it. */
export function requireCapability<T>(value: T | undefined, capability: string): T {
    if (value === undefined || value === null) throw new UnsupportedError(capability)
    return value
}
