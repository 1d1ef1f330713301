/**
 * Clock and RNG contracts on DeviceScript (hal/clock.ts; GP-TM-35). Monotonic time
 * is `ds.millis()`, which only advances across an await. Wall time is unknown (null) until
 * something trusted sets it. The RNG reports itself cryptographic only where the runtime's
 * generator is (ESP32), so callers refuse to make keys on an RP2040.
 */

import * as ds from "@devicescript/core"
import { randomBuffer } from "@devicescript/crypto"
import { Clock, Rng } from "../clock"
import { CryptoError } from "../errors"

export class DeviceClock implements Clock {
    /** Wall-clock milliseconds minus ds.millis(), once known. */
    private wallOffsetMs: number | null = null

    monotonicMs(): number {
        return ds.millis()
    }

    wallTime(): number | null {
        if (this.wallOffsetMs === null) return null
        return Math.floor((ds.millis() + this.wallOffsetMs) / 1000)
    }

    /**
     * Sets the wall clock from a time the caller has authenticated (for example a signed
     * broker message); the board itself has no trusted time source.
     */
    setWallTime(unixSeconds: number): void {
        if (!(unixSeconds > 0)) return
        this.wallOffsetMs = unixSeconds * 1000 - ds.millis()
    }

    async sleep(ms: number): Promise<void> {
        await ds.sleep(ms)
    }
}

export class DeviceRng implements Rng {
    readonly cryptographic: boolean

    constructor(cryptographic: boolean) {
        this.cryptographic = cryptographic
    }

    bytes(length: number): Buffer {
        if (!(length >= 0 && length <= 4096) || Math.floor(length) !== length)
            throw new CryptoError("input", "length must be 0 to 4096")
        return randomBuffer(length)
    }
}
