/**
 * Random numbers for the simulated board: `SimRng`, the HAL Rng, draws from the host's
 * cryptographic generator (as a hardware TRNG would); `SeededRandom` is a small
 * deterministic generator used only for fault injection, so a torn write reproduces from
 * its seed. Never use SeededRandom for keys or nonces.
 */

import { randomBytes } from "node:crypto"
import { Rng } from "../hal/clock"

export class SimRng implements Rng {
    readonly cryptographic = true

    bytes(length: number): Buffer {
        if (!Number.isInteger(length) || length < 0 || length > 1 << 20)
            throw new RangeError("length: expected an integer in [0, 2^20]")
        return randomBytes(length)
    }
}

/** Mulberry32: 32 bits of state, plenty for choosing tear points; not cryptographic. */
export class SeededRandom {
    private state: number

    constructor(seed: number) {
        this.state = seed >>> 0
    }

    /** Next value, uniform in [0, 2^32). */
    nextU32(): number {
        this.state = (this.state + 0x6d2b79f5) >>> 0
        let t = this.state
        t = Math.imul(t ^ (t >>> 15), t | 1)
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
        return (t ^ (t >>> 14)) >>> 0
    }

    /** Uniform integer in [0, bound); bound at most 2^32. */
    below(bound: number): number {
        return Math.floor((this.nextU32() / 0x100000000) * bound)
    }

    /** Uniform integer in [min, max], both included. */
    between(min: number, max: number): number {
        return min + this.below(max - min + 1)
    }

    bytes(length: number): Buffer {
        const out = Buffer.alloc(length)
        for (let i = 0; i < length; i++) out[i] = this.nextU32() & 0xff
        return out
    }
}
