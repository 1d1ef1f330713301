/**
 * Generates test/vectors/slhdsa-sha2-128s.json, the shared SLH-DSA-SHA2-128s (FIPS 205)
 * vectors of the portable verifier (boot/slhdsa.ts): keys from fixed seeds, a few signatures
 * made once by @noble/post-quantum (signing 128s takes seconds each), and attack cases whose
 * expected verdicts are noble's. Run: `npx tsx tools/gen-slhdsa-vectors.ts` (about 30 s).
 */

import { readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { slh_dsa_sha2_128s } from "@noble/post-quantum/slh-dsa.js"

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..")
const OUT = join(ROOT, "test/vectors/slhdsa-sha2-128s.json")

const N = 16
const FORS_END = N + 14 * 13 * N
const XMSS_BYTES = (35 + 9) * N

export interface VectorKey {
    seed: string
    publicKey: string
}

export interface VectorSignature {
    name: string
    key: number
    /** "pure": Algorithm 24 with `context`; "internal": Algorithm 20 over `message` as is. */
    interface: "pure" | "internal"
    message: string
    context: string
    signature: string
}

/**
 * One verification: signature `signature` of the list checked with its own key, message,
 * context and interface unless a field here overrides it; `flip` XORs one signature byte,
 * `length` truncates the signature or extends it with zero bytes.
 */
export interface VectorCase {
    name: string
    signature: number
    interface?: "pure" | "internal"
    publicKey?: string
    message?: string
    context?: string
    flip?: [number, number]
    length?: number
    valid: boolean
}

export interface VectorFile {
    description: string
    source: string
    license: string
    parameterSet: string
    keys: VectorKey[]
    signatures: VectorSignature[]
    cases: VectorCase[]
}

/** Applies a case to its signature: the inputs both verifiers receive. */
export function caseInputs(file: VectorFile, c: Omit<VectorCase, "valid">) {
    const base = file.signatures[c.signature]
    let signature = Buffer.from(base.signature, "hex")
    if (c.flip) {
        signature = Buffer.from(signature)
        signature[c.flip[0]] ^= c.flip[1]
    }
    if (c.length !== undefined) {
        const resized = Buffer.alloc(c.length)
        signature.copy(resized, 0, 0, Math.min(c.length, signature.length))
        signature = resized
    }
    return {
        interface: c.interface ?? base.interface,
        publicKey: Buffer.from(c.publicKey ?? file.keys[base.key].publicKey, "hex"),
        message: Buffer.from(c.message ?? base.message, "hex"),
        context: Buffer.from(c.context ?? base.context, "hex"),
        signature,
    }
}

/** noble's verdict; noble throws on some malformed inputs (key length, long context). */
export function nobleVerdict(inputs: ReturnType<typeof caseInputs>): boolean {
    try {
        if (inputs.interface === "internal")
            return slh_dsa_sha2_128s.internal.verify(
                inputs.signature,
                inputs.message,
                inputs.publicKey
            )
        return slh_dsa_sha2_128s.verify(inputs.signature, inputs.message, inputs.publicKey, {
            context: inputs.context,
        })
    } catch {
        return false
    }
}

/** A deterministic byte pattern (no randomness: the file must be reproducible). */
function pattern(length: number, salt: number): Buffer {
    const out = Buffer.alloc(length)
    let x = salt
    for (let i = 0; i < length; i++) {
        x = (x * 1103515245 + 12345) >>> 0
        out[i] = x >>> 24
    }
    return out
}

/** Flip positions over R, FORS (first, middle, last tree) and each hypertree layer. */
function spreadPositions(): number[] {
    const at = new Set<number>([0, N - 1])
    for (const tree of [0, 6, 13]) {
        const base = N + tree * 13 * N
        at.add(base)
        at.add(base + N)
        at.add(base + 13 * N - 1)
    }
    for (let layer = 0; layer < 7; layer++) {
        const base = FORS_END + layer * XMSS_BYTES
        at.add(base)
        at.add(base + 17 * N + 5)
        at.add(base + 35 * N - 1)
        at.add(base + 35 * N)
        at.add(base + XMSS_BYTES - 1)
    }
    for (let p = 101; at.size < 64; p += 293) at.add(p)
    return [...at].sort((a, b) => a - b)
}

interface SignaturePlan {
    name: string
    key: number
    interface: "pure" | "internal"
    message: Buffer
    context: Buffer
    /** noble's extraEntropy: false signs deterministically (opt_rand = PK.seed). */
    rand: false | Buffer
}

const PLAN: SignaturePlan[] = [
    {
        name: "empty message, no context, deterministic",
        key: 0, interface: "pure", message: Buffer.alloc(0), context: Buffer.alloc(0), rand: false,
    },
    {
        name: "32-byte digest with an image context",
        key: 0, interface: "pure", message: pattern(32, 3),
        context: Buffer.from("bulwark-image-v1"), rand: false,
    },
    {
        name: "1000-byte message, hedged",
        key: 1, interface: "pure", message: pattern(1000, 4), context: Buffer.alloc(0),
        rand: pattern(16, 5),
    },
    {
        name: "internal interface, hedged",
        key: 1, interface: "internal", message: Buffer.from("bulwark internal M'"),
        context: Buffer.alloc(0), rand: pattern(16, 6),
    },
    {
        name: "255-byte context (the maximum)",
        key: 0, interface: "pure", message: Buffer.from("max context"), context: pattern(255, 7),
        rand: false,
    },
]

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

function sign(plan: SignaturePlan, secretKey: Uint8Array): VectorSignature {
    const opts = { extraEntropy: plan.rand }
    const sig = plan.interface === "internal"
        ? slh_dsa_sha2_128s.internal.sign(plan.message, secretKey, opts)
        : slh_dsa_sha2_128s.sign(plan.message, secretKey, { ...opts, context: plan.context })
    process.stderr.write(`signed: ${plan.name}\n`)
    return {
        name: plan.name,
        key: plan.key,
        interface: plan.interface,
        message: hex(plan.message),
        context: hex(plan.context),
        signature: hex(sig),
    }
}

type Case = Omit<VectorCase, "valid">

/** Single-byte flips: 64 spread positions of signature 0, six of every other signature. */
function flipCases(signatures: VectorSignature[]): Case[] {
    const cases: Case[] = []
    for (const pos of spreadPositions()) {
        const mask = [0x01, 0x80, 0xff][pos % 3]
        cases.push({ name: `sig 0 byte ${pos} ^ ${mask}`, signature: 0, flip: [pos, mask] })
    }
    const positions = [0, 17, 1500, FORS_END + 3, FORS_END + 4 * XMSS_BYTES + 600, 7855]
    for (let i = 1; i < signatures.length; i++)
        for (const pos of positions)
            cases.push({ name: `sig ${i} byte ${pos} ^ 0x40`, signature: i, flip: [pos, 0x40] })
    return cases
}

/** Another message, context, key, signature length or interface than the signature's. */
function substitutionCases(signatures: VectorSignature[], publicKeys: Uint8Array[]): Case[] {
    const cases: Case[] = []
    const m1 = Buffer.from(signatures[1].message, "hex")
    m1[31] ^= 1
    const m2 = signatures[2].message.slice(2)
    cases.push({ name: "wrong message: last bit flipped", signature: 1, message: hex(m1) })
    cases.push({ name: "wrong message: a byte appended", signature: 0, message: "00" })
    cases.push({ name: "wrong message: first byte dropped", signature: 2, message: m2 })
    cases.push({ name: "wrong context: context dropped", signature: 1, context: "" })
    cases.push({ name: "wrong context: context added", signature: 0, context: "00" })
    cases.push({ name: "context of 256 bytes", signature: 4, context: hex(pattern(256, 7)) })

    const pk0 = Buffer.from(publicKeys[0])
    const other = hex(publicKeys[1])
    cases.push({ name: "wrong key: the other identity", signature: 0, publicKey: other })
    for (const [pos, what] of [[0, "PK.seed"], [31, "PK.root"]] as const) {
        const bad = Buffer.from(pk0)
        bad[pos] ^= 0x01
        cases.push({ name: `wrong key: ${what} bit flipped`, signature: 0, publicKey: hex(bad) })
    }
    cases.push({ name: "key of 31 bytes", signature: 0, publicKey: hex(pk0.subarray(0, 31)) })
    cases.push({ name: "key of 33 bytes", signature: 0, publicKey: hex(pk0) + "00" })
    cases.push({ name: "empty key", signature: 0, publicKey: "" })

    for (const length of [0, 16, 7840, 7855])
        cases.push({ name: `signature truncated to ${length} bytes`, signature: 0, length })
    for (const length of [7857, 7872, 15712])
        cases.push({ name: `signature extended to ${length} bytes`, signature: 2, length })

    cases.push({ name: "internal signature checked as pure", signature: 3, interface: "pure" })
    cases.push({ name: "pure signature checked as internal", signature: 0, interface: "internal" })
    cases.push({
        name: "pure signature as internal over M' = 00 00 || M",
        signature: 0,
        interface: "internal",
        message: "0000",
    })
    return cases
}

function main(): void {
    const version = JSON.parse(
        readFileSync(join(ROOT, "node_modules/@noble/post-quantum/package.json"), "utf8")
    ).version
    const seeds = [pattern(48, 1), pattern(48, 2)]
    const keys = seeds.map((seed) => slh_dsa_sha2_128s.keygen(seed))

    const signatures = PLAN.map((plan) => sign(plan, keys[plan.key].secretKey))
    const genuine = signatures.map((s, i) => ({ name: `genuine: ${s.name}`, signature: i }))
    const cases: Case[] = [
        ...genuine,
        ...flipCases(signatures),
        ...substitutionCases(signatures, keys.map((k) => k.publicKey)),
    ]

    const file: VectorFile = {
        description: "SLH-DSA-SHA2-128s (FIPS 205) verification vectors for boot/slhdsa.ts; " +
            "`valid` is @noble/post-quantum's verdict (a throw counts as false)",
        source: `generated by tools/gen-slhdsa-vectors.ts with @noble/post-quantum ${version}`,
        license: "Apache-2.0 (this project); made with @noble/post-quantum (MIT)",
        parameterSet: "SLH-DSA-SHA2-128s",
        keys: keys.map((k, i) => ({ seed: hex(seeds[i]), publicKey: hex(k.publicKey) })),
        signatures,
        cases: [],
    }
    file.cases = cases.map((c) => ({ ...c, valid: nobleVerdict(caseInputs(file, c)) }))
    writeFileSync(OUT, JSON.stringify(file, null, 1) + "\n")
    process.stderr.write(`wrote ${file.cases.length} cases to ${OUT}\n`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
