/**
 * Portable SLH-DSA-SHA2-128s signature verification (FIPS 205; GP-TM-04, GP-TM-18) on the
 * HAL's SHA-256 alone, for boards that cannot do elliptic curves. Implements Algorithm 24
 * slh_verify (pure, with context) and Algorithm 20 slh_verify_internal, FORS (Algorithm 17
 * fors_pkFromSig), the hypertree (Algorithm 13 ht_verify), XMSS (Algorithm 11
 * xmss_pkFromSig), WOTS+ (Algorithm 8 wots_pkFromSig, Algorithm 5 chain); hashes, ADRS_c
 * and base_2^b (Algorithm 4) are in slhdsa-hash.ts. Signing (PRF, PRF_msg) is host-only.
 */

import { equalBytes } from "./bytes"
import { Crypto } from "../hal/crypto"
import {
    ADRS_BYTES,
    ADRS_FORS_ROOTS,
    ADRS_FORS_TREE,
    ADRS_TREE,
    ADRS_WOTS_HASH,
    ADRS_WOTS_PK,
    SLH_A,
    SLH_D,
    SLH_HP,
    SLH_K,
    SLH_LEN,
    SLH_LEN1,
    SLH_LEN2,
    SLH_N,
    SLH_PUBLIC_KEY_LENGTH,
    SLH_SIGNATURE_LENGTH,
    SLH_W,
    SlhHasher,
    base2b,
    copyBytes,
    copyKeyPairAddress,
    newAdrs,
    setChainAddress,
    setHashAddress,
    setKeyPairAddress,
    setLayerAddress,
    setTreeAddress,
    setTypeAndClear,
} from "./slhdsa-hash"

export { SLH_PUBLIC_KEY_LENGTH, SLH_SIGNATURE_LENGTH } from "./slhdsa-hash"

/** Counts of the verifications that share it (bench/pq.ts reads the SHA-256 cost here). */
export interface SlhDsaStats {
    sha256Calls: number
    yields: number
}

export interface SlhDsaVerifyOptions {
    /** FIPS 205 context string, 0 to 255 bytes; empty when absent (pure interface only). */
    context?: Buffer
    /**
     * Hash calls between two awaits of `yieldNow`, 256 when absent; `yieldNow` is also
     * awaited before the first hash and after the last, so at most yieldEvery + 15 hashes
     * run between two awaits, even across consecutive verifications.
     */
    yieldEvery?: number
    /** The scheduler's yield point (DeviceScript kills loops that never await). */
    yieldNow?: () => Promise<void>
    /** Receives the number of HAL sha256 calls and yields of this verification (added). */
    stats?: SlhDsaStats
}

const DEFAULT_YIELD_EVERY = 256
const FORS_BYTES = SLH_K * (1 + SLH_A) * SLH_N
const XMSS_BYTES = (SLH_LEN + SLH_HP) * SLH_N
/** Signature layout (section 9.2): R || SIG_FORS || SIG_HT (d XMSS signatures). */
const OFF_FORS = SLH_N
const OFF_HT = SLH_N + FORS_BYTES

async function resolvedYield(): Promise<void> {}

/** Inputs must be Buffers (a host's Uint8Array is refused: wrap it with Buffer.from). */
function isBytes(value: unknown): boolean {
    return value instanceof Buffer
}

/** The 54-bit hypertree index, as 27-bit halves hi·2^27 + lo (no BigInt on the device). */
interface TreeIndex {
    hi: number
    lo: number
}

/**
 * Algorithm 24, slh_verify(M, SIG, ctx, PK), pure variant: verifies over
 * M' = toByte(0, 1) || toByte(|ctx|, 1) || ctx || M, as @noble/post-quantum's
 * slh_dsa_sha2_128s.verify(sig, msg, publicKey, { context }) does. Returns false for any
 * malformed input (wrong lengths, context over 255 bytes, non-buffers); never throws on one.
 */
export async function slhDsaVerify(
    crypto: Crypto,
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer,
    options?: SlhDsaVerifyOptions
): Promise<boolean> {
    let context: Buffer = Buffer.alloc(0)
    if (options && options.context !== undefined) {
        if (!isBytes(options.context)) return false
        context = options.context
    }
    if (context.length > 255 || !isBytes(message)) return false
    const header = Buffer.alloc(2 + context.length)
    header[1] = context.length
    copyBytes(header, 2, context, 0, context.length)
    return await verifyParts(crypto, publicKey, [header, message], signature, options)
}

/**
 * Algorithm 20, slh_verify_internal(M, SIG, PK): verifies over `message` as given, with no
 * context prefix (noble's slh_dsa_sha2_128s.internal.verify). `options.context` is ignored.
 */
export async function slhDsaVerifyInternal(
    crypto: Crypto,
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer,
    options?: SlhDsaVerifyOptions
): Promise<boolean> {
    if (!isBytes(message)) return false
    return await verifyParts(crypto, publicKey, [message], signature, options)
}

async function verifyParts(
    crypto: Crypto,
    publicKey: Buffer,
    messageParts: Buffer[],
    signature: Buffer,
    options?: SlhDsaVerifyOptions
): Promise<boolean> {
    if (!isBytes(publicKey) || publicKey.length !== SLH_PUBLIC_KEY_LENGTH) return false
    if (!isBytes(signature) || signature.length !== SLH_SIGNATURE_LENGTH) return false
    let yieldEvery = DEFAULT_YIELD_EVERY
    let yieldNow = resolvedYield
    if (options) {
        const every = options.yieldEvery
        if (typeof every === "number" && every >= 1) yieldEvery = every
        if (options.yieldNow) yieldNow = options.yieldNow
    }
    const hasher = new SlhHasher(crypto, publicKey, yieldEvery, yieldNow)

    await hasher.yieldAlways()
    const valid = await verifyWellFormed(hasher, publicKey, messageParts, signature)
    await hasher.yieldAlways()

    if (options && options.stats) {
        options.stats.sha256Calls += hasher.calls
        options.stats.yields += hasher.yields
    }
    return valid
}

/** Algorithm 20 steps 2 to 16, once the lengths are known to be right (step 1). */
async function verifyWellFormed(
    hasher: SlhHasher,
    publicKey: Buffer,
    messageParts: Buffer[],
    signature: Buffer
): Promise<boolean> {
    const r = signature.slice(0, SLH_N)
    const digest = hasher.hashMessage(r, publicKey, messageParts)

    // Steps 7-11: md (21 bytes), idx_tree (7 bytes mod 2^54), idx_leaf (2 bytes mod 2^9).
    const tree: TreeIndex = {
        hi: (digest[24] >> 3) + digest[23] * 32 + digest[22] * 8192 + (digest[21] & 0x3f) * 2097152,
        lo: digest[27] + digest[26] * 256 + digest[25] * 65536 + (digest[24] & 7) * 16777216,
    }
    const leaf = (digest[28] * 256 + digest[29]) & 511

    const adrs = newAdrs()
    setTreeAddress(adrs, tree.hi, tree.lo)
    setTypeAndClear(adrs, ADRS_FORS_TREE)
    setKeyPairAddress(adrs, leaf)
    const forsPk = await forsPkFromSig(hasher, signature, digest, adrs)

    const root = await htVerify(hasher, forsPk, signature, tree, leaf)
    return equalBytes(root, publicKey.slice(SLH_N, 2 * SLH_N))
}

/**
 * Algorithm 17, fors_pkFromSig: k = 14 trees of height a = 12; each leaf is F of the
 * revealed secret, climbed to its root along the authentication path; T_k of the roots.
 */
async function forsPkFromSig(
    hasher: SlhHasher,
    signature: Buffer,
    md: Buffer,
    adrs: Buffer
): Promise<Buffer> {
    const indices = base2b(md, 0, SLH_A, SLH_K)
    const roots = Buffer.alloc(SLH_K * SLH_N)
    for (let i = 0; i < SLH_K; i++) {
        const base = OFF_FORS + i * (1 + SLH_A) * SLH_N
        const treeIndex = i * 4096 + indices[i]
        setChainAddress(adrs, 0)
        setHashAddress(adrs, treeIndex)
        const leaf = hasher.tweak(adrs, signature.slice(base, base + SLH_N))
        const node = await climb(hasher, adrs, leaf, treeIndex, signature, base + SLH_N, SLH_A)
        copyBytes(roots, i * SLH_N, node, 0, SLH_N)
    }

    const pkAdrs = copyAdrs(adrs)
    setTypeAndClear(pkAdrs, ADRS_FORS_ROOTS)
    copyKeyPairAddress(pkAdrs, adrs)
    return hasher.tweak(pkAdrs, roots)
}

/**
 * The authentication-path climb shared by Algorithms 11 and 17: at height j + 1 the node
 * is H(node || AUTH[j]) when its index at height j is even, H(AUTH[j] || node) when odd,
 * with the tree index halved on the way. `index` is below 2^16 here, so `>>` is exact.
 */
async function climb(
    hasher: SlhHasher,
    adrs: Buffer,
    leaf: Buffer,
    index: number,
    signature: Buffer,
    authOffset: number,
    height: number
): Promise<Buffer> {
    let node = leaf
    let treeIndex = index
    for (let j = 0; j < height; j++) {
        const sibling = signature.slice(authOffset + j * SLH_N, authOffset + (j + 1) * SLH_N)
        setChainAddress(adrs, j + 1)
        if ((treeIndex & 1) === 0) {
            treeIndex = treeIndex >> 1
            setHashAddress(adrs, treeIndex)
            node = hasher.tweak2(adrs, node, sibling)
        } else {
            treeIndex = (treeIndex - 1) >> 1
            setHashAddress(adrs, treeIndex)
            node = hasher.tweak2(adrs, sibling, node)
        }
    }
    await hasher.pace()
    return node
}

/**
 * Algorithm 13, ht_verify: d = 7 XMSS layers; each turns the node below (the FORS public
 * key first) into its tree's root, the top root must equal PK.root (checked by the caller).
 */
async function htVerify(
    hasher: SlhHasher,
    forsPk: Buffer,
    signature: Buffer,
    tree: TreeIndex,
    firstLeaf: number
): Promise<Buffer> {
    const adrs = newAdrs()
    let node = forsPk
    let leaf = firstLeaf
    for (let layer = 0; layer < SLH_D; layer++) {
        if (layer > 0) {
            // idx_leaf = idx_tree mod 2^h', idx_tree = idx_tree >> h' over the 27-bit halves.
            leaf = tree.lo & 511
            tree.lo = (tree.lo >> SLH_HP) + (tree.hi & 511) * 262144
            tree.hi = tree.hi >> SLH_HP
        }
        setLayerAddress(adrs, layer)
        setTreeAddress(adrs, tree.hi, tree.lo)
        node = await xmssPkFromSig(hasher, leaf, signature, OFF_HT + layer * XMSS_BYTES, node, adrs)
    }
    return node
}

/** Algorithm 11, xmss_pkFromSig: WOTS+ public key of leaf `leaf`, then the climb of h' = 9. */
async function xmssPkFromSig(
    hasher: SlhHasher,
    leaf: number,
    signature: Buffer,
    offset: number,
    message: Buffer,
    adrs: Buffer
): Promise<Buffer> {
    setTypeAndClear(adrs, ADRS_WOTS_HASH)
    setKeyPairAddress(adrs, leaf)
    const wotsPk = await wotsPkFromSig(hasher, signature, offset, message, adrs)

    setTypeAndClear(adrs, ADRS_TREE)
    setHashAddress(adrs, leaf)
    const authOffset = offset + SLH_LEN * SLH_N
    return await climb(hasher, adrs, wotsPk, leaf, signature, authOffset, SLH_HP)
}

/**
 * Algorithm 8, wots_pkFromSig: message digits in base w = 16 (len1 = 32) and the checksum
 * digits (len2 = 3, the checksum shifted left by 4 bits); each chain runs from its digit to
 * w - 1 (Algorithm 5); T_len of the chain ends is the WOTS+ public key.
 */
async function wotsPkFromSig(
    hasher: SlhHasher,
    signature: Buffer,
    offset: number,
    message: Buffer,
    adrs: Buffer
): Promise<Buffer> {
    const digits = base2b(message, 0, 4, SLH_LEN1)
    let csum = 0
    for (let i = 0; i < SLH_LEN1; i++) csum += SLH_W - 1 - digits[i]
    const csumBytes = Buffer.alloc(2)
    csum = csum << 4
    csumBytes[0] = (csum >> 8) & 0xff
    csumBytes[1] = csum & 0xff
    const csumDigits = base2b(csumBytes, 0, 4, SLH_LEN2)
    for (let i = 0; i < SLH_LEN2; i++) digits.push(csumDigits[i])

    const ends = Buffer.alloc(SLH_LEN * SLH_N)
    for (let i = 0; i < SLH_LEN; i++) {
        setChainAddress(adrs, i)
        const start = signature.slice(offset + i * SLH_N, offset + (i + 1) * SLH_N)
        const end = chain(hasher, adrs, start, digits[i], SLH_W - 1 - digits[i])
        copyBytes(ends, i * SLH_N, end, 0, SLH_N)
        await hasher.pace()
    }

    const pkAdrs = copyAdrs(adrs)
    setTypeAndClear(pkAdrs, ADRS_WOTS_PK)
    copyKeyPairAddress(pkAdrs, adrs)
    return hasher.tweak(pkAdrs, ends)
}

/** Algorithm 5, chain: `steps` iterations of F from hash address `start`. */
function chain(
    hasher: SlhHasher,
    adrs: Buffer,
    x: Buffer,
    start: number,
    steps: number
): Buffer {
    let tmp = x
    for (let j = start; j < start + steps; j++) {
        setHashAddress(adrs, j)
        tmp = hasher.tweak(adrs, tmp)
    }
    return tmp
}

function copyAdrs(adrs: Buffer): Buffer {
    const out = Buffer.alloc(ADRS_BYTES)
    copyBytes(out, 0, adrs, 0, ADRS_BYTES)
    return out
}
