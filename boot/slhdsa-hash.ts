/**
 * SLH-DSA-SHA2-128s building blocks (FIPS 205): the compressed address ADRS_c (section 11.2),
 * the SHA2 security-category-1 hash functions F, H, T_l and H_msg with MGF1-SHA-256 (section
 * 11.2.1), and base_2^b (Algorithm 4). Every hash goes through the HAL's crypto.sha256, is
 * counted, and the caller yields to the scheduler every few hundred of them (DESIGN.md 4).
 */

import { writeU32 } from "./bytes"
import { Crypto } from "../hal/crypto"

/** Table 2 row SLH-DSA-SHA2-128s: n=16, h=63, d=7, h'=9, a=12, k=14, lg_w=4, m=30. */
export const SLH_N = 16
export const SLH_D = 7
export const SLH_HP = 9
export const SLH_A = 12
export const SLH_K = 14
export const SLH_W = 16
export const SLH_LEN1 = 32
export const SLH_LEN2 = 3
export const SLH_LEN = 35
export const SLH_M = 30
export const SLH_PUBLIC_KEY_LENGTH = 32
/** (1 + k(1 + a) + h + d·len)·n = 491·16 bytes (section 9.2, Figure 17). */
export const SLH_SIGNATURE_LENGTH = 7856

/** ADRS types (section 4.2, Table 1). */
export const ADRS_WOTS_HASH = 0
export const ADRS_WOTS_PK = 1
export const ADRS_TREE = 2
export const ADRS_FORS_TREE = 3
export const ADRS_FORS_ROOTS = 4

/**
 * ADRS_c, the 22-byte compressed address of section 11.2: layer (1 byte) || tree address
 * (8 bytes) || type (1 byte) || key pair || chain address or tree height || hash address or
 * tree index (4 bytes each, big-endian).
 */
export const ADRS_BYTES = 22
const OFF_LAYER = 0
const OFF_TREE = 1
const OFF_TYPE = 9
const OFF_KEYPAIR = 10
const OFF_CHAIN = 14
const OFF_HASH = 18

export function newAdrs(): Buffer {
    return Buffer.alloc(ADRS_BYTES)
}

export function setLayerAddress(adrs: Buffer, layer: number): void {
    adrs[OFF_LAYER] = layer
}

/**
 * Sets the 64-bit tree address from a 54-bit index held as two 27-bit halves
 * (hi·2^27 + lo), since a double cannot hold every 54-bit integer and there is no BigInt.
 */
export function setTreeAddress(adrs: Buffer, hi: number, lo: number): void {
    writeU32(adrs, OFF_TREE, Math.floor(hi / 32))
    writeU32(adrs, OFF_TREE + 4, (hi & 31) * 0x8000000 + lo)
}

/** ADRS.setTypeAndClear: the type, and zeros in the three words after it. */
export function setTypeAndClear(adrs: Buffer, type: number): void {
    adrs[OFF_TYPE] = type
    for (let i = OFF_KEYPAIR; i < ADRS_BYTES; i++) adrs[i] = 0
}

/**
 * Writes a word of ADRS_c whose value is below 2^16, as every word but the tree address is
 * for 128s (key pair < 2^9, chain < 35, height <= 12, hash < 16, tree index < 14·2^12):
 * two byte stores instead of writeU32's divisions, in the innermost loop of the device.
 */
function setWord(adrs: Buffer, offset: number, value: number): void {
    adrs[offset] = 0
    adrs[offset + 1] = 0
    adrs[offset + 2] = value >> 8
    adrs[offset + 3] = value & 0xff
}

export function setKeyPairAddress(adrs: Buffer, keyPair: number): void {
    setWord(adrs, OFF_KEYPAIR, keyPair)
}

/** ADRS.setKeyPairAddress(src.getKeyPairAddress()). */
export function copyKeyPairAddress(dst: Buffer, src: Buffer): void {
    copyBytes(dst, OFF_KEYPAIR, src, OFF_KEYPAIR, 4)
}

/** Chain address (WOTS+) and tree height (XMSS, FORS) share one word. */
export function setChainAddress(adrs: Buffer, chain: number): void {
    setWord(adrs, OFF_CHAIN, chain)
}

/** Hash address (WOTS+) and tree index (XMSS, FORS) share one word. */
export function setHashAddress(adrs: Buffer, hash: number): void {
    setWord(adrs, OFF_HASH, hash)
}

/** Copies `len` bytes; Buffer.copy is not in the DeviceScript subset. */
export function copyBytes(dst: Buffer, dstOff: number, src: Buffer, srcOff: number, len: number) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]
}

/**
 * Algorithm 4, base_2^b: the first `outLen` b-bit digits of `x` from byte `offset`, most
 * significant first. The accumulator is masked after each digit so it stays below 2^(b+8).
 */
export function base2b(x: Buffer, offset: number, b: number, outLen: number): number[] {
    const out: number[] = []
    let pos = offset
    let bits = 0
    let total = 0
    for (let i = 0; i < outLen; i++) {
        while (bits < b) {
            total = total * 256 + x[pos]
            pos++
            bits += 8
        }
        bits -= b
        const unit = 1 << bits
        out.push(Math.floor(total / unit) & ((1 << b) - 1))
        total = total & (unit - 1)
    }
    return out
}

/**
 * The hash context of one verification: PK.seed padded to one SHA-256 block (section
 * 11.2.1 prepends PK.seed || toByte(0, 64 - n) to every F, H and T_l input), the HAL crypto,
 * and the yield budget. The HAL has no mid-state API, so the padded block is hashed again
 * by every call; `calls` makes that cost visible.
 */
export class SlhHasher {
    private readonly crypto: Crypto
    private readonly paddedSeed: Buffer
    private readonly yieldEvery: number
    private readonly yieldNow: () => Promise<void>
    private sinceYield: number
    calls: number
    yields: number

    constructor(
        crypto: Crypto,
        pkSeed: Buffer,
        yieldEvery: number,
        yieldNow: () => Promise<void>
    ) {
        this.crypto = crypto
        this.paddedSeed = Buffer.alloc(64)
        copyBytes(this.paddedSeed, 0, pkSeed, 0, SLH_N)
        this.yieldEvery = yieldEvery
        this.yieldNow = yieldNow
        this.sinceYield = 0
        this.calls = 0
        this.yields = 0
    }

    private sha256(parts: Buffer[]): Buffer {
        this.calls++
        this.sinceYield++
        return this.crypto.sha256(parts)
    }

    /**
     * F, H and T_l of section 11.2.1 for category 1 are one function:
     * Trunc_n(SHA-256(PK.seed || toByte(0, 64 - n) || ADRS_c || input)), where `input` is
     * one, two or l n-byte values.
     */
    tweak(adrs: Buffer, input: Buffer): Buffer {
        return this.sha256([this.paddedSeed, adrs, input]).slice(0, SLH_N)
    }

    /** H of two n-byte nodes, left || right, without concatenating them first. */
    tweak2(adrs: Buffer, left: Buffer, right: Buffer): Buffer {
        return this.sha256([this.paddedSeed, adrs, left, right]).slice(0, SLH_N)
    }

    /**
     * H_msg(R, PK.seed, PK.root, M) = MGF1-SHA-256(R || PK.seed || SHA-256(R || PK.seed ||
     * PK.root || M), m). M arrives in parts (for M' = 0 || |ctx| || ctx || M) so a large
     * message is never copied; m = 30 < 32 takes one MGF1 block (counter 0, RFC 8017 B.2.1).
     */
    hashMessage(r: Buffer, publicKey: Buffer, messageParts: Buffer[]): Buffer {
        const inner: Buffer[] = [r, publicKey]
        for (let i = 0; i < messageParts.length; i++) inner.push(messageParts[i])
        const digest = this.sha256(inner)
        const seedPrefix = publicKey.slice(0, SLH_N)
        return this.sha256([r, seedPrefix, digest, Buffer.alloc(4)]).slice(0, SLH_M)
    }

    /** Awaits the injected yield point once `yieldEvery` hashes have run since the last. */
    async pace(): Promise<void> {
        if (this.sinceYield < this.yieldEvery) return
        await this.yieldAlways()
    }

    /**
     * Awaits the yield point now. The verifier does so before its first hash and after its
     * last, so the tail of one verification and the head of the next (or the caller's own
     * work) never add up to more than one budget without an await between them.
     */
    async yieldAlways(): Promise<void> {
        this.sinceYield = 0
        this.yields++
        await this.yieldNow()
    }
}
