/**
 * `bulwark keys new`, `bulwark image sign|inspect|verify` (docs/image-format.md,
 * docs/signatures.md; GP-TM-03, GP-TM-04, GP-TM-06, GP-TM-34). Exit 0 on success or a valid
 * image, 1 when verification refuses (JSON {"ok":false,"check":...,"signatures":[...]}),
 * 2 for bad usage and unreadable files. Key files are never overwritten.
 */

import { readFileSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"

import {
    flag,
    flagList,
    hasFlag,
    intFlag,
    parseArgs,
    RefusedError,
    requireFlag,
    UsageError,
} from "../args"
import { registerCommands } from "../cli"
import { printResult, readInput } from "../command-helpers"
import {
    ImageError,
    readImageLayout,
    SignatureReport,
    verifyImage,
    VerifyPolicy,
} from "../../boot/image"
import {
    ENTRY_DIGEST,
    ENTRY_KEY_DIGEST,
    ENTRY_PUBLIC_KEY,
    ENTRY_SIGNATURE,
} from "../../boot/image-format"
import { algorithmFromId } from "../../boot/anchor"
import { SignaturePolicy } from "../../boot/profile"
import { Crypto, SignatureAlgorithm } from "../../hal/crypto"
import { OTP_KEY_SLOT_COUNT, OtpKeySlot } from "../../hal/otp"
import { RestrictedCrypto, SimCrypto } from "../../sim/crypto"
import {
    generateReleaseKey,
    KeyChoice,
    PRIVATE_FORMAT,
    PUBLIC_FORMAT,
    readPrivateKeyFile,
    readPublicKeyFile,
    writeReleaseKeyFiles,
} from "../keyfile"
import { bufferSource, buildSignedImage } from "../signer"

const POLICIES: SignaturePolicy[] = ["classical", "hybrid", "pq-only"]
const KEY_CHOICES = ["p256", "ed25519", "hybrid"]

/**
 * What each target can verify (docs/signatures.md, per-target table): the sim and the host
 * tools check every algorithm; a DeviceScript board has native SHA-256 but no elliptic-curve
 * arithmetic, so it checks SLH-DSA alone.
 */
const TARGET_VERIFIERS: Record<string, SignatureAlgorithm[]> = {
    sim: ["ecdsa-p256-sha256", "ed25519", "slh-dsa-sha2-128s"],
    devicescript: ["slh-dsa-sha2-128s"],
}

function targetCrypto(target: string): Crypto {
    const algorithms = TARGET_VERIFIERS[target]
    if (!Object.hasOwn(TARGET_VERIFIERS, target) || algorithms === undefined)
        throw new UsageError("--target must be sim or devicescript")
    return target === "sim" ? new SimCrypto() : new RestrictedCrypto(algorithms)
}

function verdictText(reports: SignatureReport[]): string[] {
    return reports.map(
        (r) => `signature ${r.algorithm}: ${r.verdict}${r.required ? " (required)" : ""}`
    )
}

function onePositional(positional: string[], what: string): string {
    if (positional.length !== 1) throw new UsageError(`expected exactly one ${what}`)
    return positional[0]
}

function entryName(type: number): string {
    if (type === ENTRY_DIGEST) return "digest"
    if (type === ENTRY_KEY_DIGEST) return "key-digest"
    if (type === ENTRY_PUBLIC_KEY) return "public-key"
    if (type === ENTRY_SIGNATURE) return "signature"
    return "unknown"
}

function describeEntry(type: number, value: Buffer): Record<string, unknown> {
    const entry: Record<string, unknown> = { type, name: entryName(type), length: value.length }
    if (type === ENTRY_PUBLIC_KEY || type === ENTRY_SIGNATURE) {
        entry.algorithm = algorithmFromId(value[0])
        entry.value = value.subarray(1).toString("hex")
    } else {
        entry.value = value.toString("hex")
    }
    return entry
}

/** An image may overwrite an earlier image, never a key file (which may be the only copy). */
function refuseKeyFile(path: string): void {
    let head: string
    try {
        head = readFileSync(path).subarray(0, 4096).toString("utf8")
    } catch {
        return
    }
    if (head.includes(PRIVATE_FORMAT) || head.includes(PUBLIC_FORMAT))
        throw new UsageError(`${path} is a key file; refusing to overwrite it with an image`)
}

async function keysNew(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["out", "alg"], ["json"])
    const dir = resolve(requireFlag(args, "out"))
    const alg = flag(args, "alg") ?? "p256"
    if (!KEY_CHOICES.includes(alg)) throw new UsageError("--alg must be p256, ed25519 or hybrid")
    const key = generateReleaseKey(alg as KeyChoice)
    const paths = writeReleaseKeyFiles(dir, key)
    const anchor = key.anchor.toString("hex")
    const algorithms = key.keys.map((k) => k.algorithm)
    printResult(
        hasFlag(args, "json"),
        {
            ok: true,
            algorithm: key.algorithm,
            keys: algorithms,
            key: paths.keyPath,
            pub: paths.pubPath,
            anchor,
        },
        `wrote ${paths.keyPath} (mode 0600) and ${paths.pubPath}\n` +
            `keys ${algorithms.join(" + ")}\nanchor ${anchor}`
    )
    return 0
}

async function imageSign(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["key", "in", "out", "version", "counter", "class"], ["json"])
    const key = readPrivateKeyFile(resolve(requireFlag(args, "key")))
    const payload = readInput(resolve(requireFlag(args, "in")), "payload")
    const outPath = resolve(requireFlag(args, "out"))
    let image: Buffer
    try {
        image = await buildSignedImage({
            payload: payload,
            version: requireFlag(args, "version"),
            counter: intFlag(args, "counter"),
            deviceClass: requireFlag(args, "class"),
            key: key,
        })
    } catch (err) {
        if (err instanceof ImageError) throw new UsageError(`cannot sign: ${err.message}`)
        throw err
    }
    refuseKeyFile(outPath)
    writeFileSync(outPath, image)
    const layout = await readImageLayout(bufferSource(image), true)
    const digest = layout.trailer.digest.toString("hex")
    const signatures = layout.trailer.signatures.map((s) => s.algorithm)
    printResult(
        hasFlag(args, "json"),
        { ok: true, out: outPath, size: image.length, digest: digest, signatures: signatures },
        `signed ${outPath} (${image.length} bytes), digest ${digest}, ` +
            `signatures ${signatures.join(" + ")}`
    )
    return 0
}

async function imageInspect(argv: string[]): Promise<number> {
    const args = parseArgs(argv, [], ["json"])
    const path = resolve(onePositional(args.positional, "IMAGE"))
    const bytes = readInput(path, "image")
    let layout
    try {
        layout = await readImageLayout(bufferSource(bytes), false)
    } catch (err) {
        if (!(err instanceof ImageError)) throw err
        printResult(
            hasFlag(args, "json"),
            { ok: false, check: err.check, error: err.message },
            `unparsable image: ${err.check}: ${err.message}`
        )
        return 2
    }
    const computed = new SimCrypto().sha256([bytes.subarray(0, layout.trailerOffset)])
    const result = {
        ok: true,
        size: bytes.length,
        length: layout.length,
        trailingBytes: bytes.length - layout.length,
        header: layout.header,
        trailer: {
            offset: layout.trailerOffset,
            length: layout.trailer.length,
            entries: layout.trailer.entries.map((e) => describeEntry(e.type, e.value)),
        },
        digest: computed.toString("hex"),
        digestMatches: computed.equals(layout.trailer.digest),
    }
    const h = layout.header
    printResult(
        hasFlag(args, "json"),
        result,
        [
            `image ${path}: ${h.deviceClass} ${h.version} counter ${h.securityCounter}`,
            `payload ${h.payloadSize} bytes, trailer ${layout.trailer.length} bytes`,
            `digest ${result.digest} (${result.digestMatches ? "matches" : "DOES NOT match"})`,
            ...result.trailer.entries.map((e) => `entry ${e.name} ${e.algorithm ?? ""}`.trim()),
        ].join("\n")
    )
    return 0
}

async function imageVerify(argv: string[]): Promise<number> {
    const args = parseArgs(
        argv,
        ["trust", "class", "counter", "policy", "target"],
        ["json", "accept-unverifiable-ecdsa"]
    )
    const path = resolve(onePositional(args.positional, "IMAGE"))
    const trustFiles = flagList(args, "trust")
    if (trustFiles.length === 0) throw new UsageError("missing --trust")
    if (trustFiles.length > OTP_KEY_SLOT_COUNT)
        throw new UsageError(`at most ${OTP_KEY_SLOT_COUNT} --trust files (OTP key slots)`)
    const anchors: OtpKeySlot[] = trustFiles.map((f) => ({
        digest: readPublicKeyFile(resolve(f)).anchor,
        revoked: false,
    }))
    const policyName = flag(args, "policy") ?? "classical"
    if (POLICIES.indexOf(policyName as SignaturePolicy) < 0)
        throw new UsageError("--policy must be classical, hybrid or pq-only")
    const crypto = targetCrypto(flag(args, "target") ?? "sim")
    const bytes = readInput(path, "image")
    const src = bufferSource(bytes)
    let deviceClass = flag(args, "class")
    if (deviceClass === undefined) {
        // Without --class the image's own class is accepted; the header is still checked.
        try {
            deviceClass = (await readImageLayout(src, true)).header.deviceClass
        } catch {
            deviceClass = ""
        }
    }
    const policy: VerifyPolicy = {
        deviceClass: deviceClass,
        minSecurityCounter: intFlag(args, "counter", 0),
        anchors: anchors,
        signaturePolicy: policyName as SignaturePolicy,
        exact: true,
        keepPayload: false,
        acceptUnverifiableEcdsa: hasFlag(args, "accept-unverifiable-ecdsa"),
    }
    try {
        const verified = await verifyImage(crypto, src, policy)
        const digest = verified.digest.toString("hex")
        const signatures = verified.signatures
        printResult(
            hasFlag(args, "json"),
            { ok: true, header: verified.header, digest, keySlot: verified.keySlot, signatures },
            [
                `valid: ${verified.header.deviceClass} ${verified.header.version}, ` +
                    `key slot ${verified.keySlot}, digest ${digest}`,
                ...verdictText(signatures),
            ].join("\n")
        )
        return 0
    } catch (err) {
        if (!(err instanceof ImageError)) throw err
        const details: Record<string, unknown> = { check: err.check }
        if (err.signatures !== null) details.signatures = err.signatures
        const lines = [`image refused: ${err.check}`, ...verdictText(err.signatures ?? [])]
        throw new RefusedError(lines.join("; "), details)
    }
}

registerCommands([
    {
        words: ["keys", "new"],
        usage: "keys new --out DIR [--alg p256|ed25519|hybrid] [--json]",
        summary:
            "create a release identity (DIR/release.key, mode 0600; DIR/release.pub); " +
            "hybrid: ECDSA P-256 + SLH-DSA-SHA2-128s under one anchor",
        run: keysNew,
    },
    {
        words: ["image", "sign"],
        usage:
            "image sign --key KEY --in PAYLOAD --out IMAGE --version X.Y.Z --counter N " +
            "--class CLASS [--json]",
        summary: "build and sign an image from a payload",
        run: imageSign,
    },
    {
        words: ["image", "inspect"],
        usage: "image inspect IMAGE [--json]",
        summary: "print an image's header fields, trailer entries and digest (no verdict)",
        run: imageInspect,
    },
    {
        words: ["image", "verify"],
        usage:
            "image verify IMAGE --trust PUB [--trust PUB ...] [--class C] [--counter N] " +
            "[--policy classical|hybrid|pq-only] [--target sim|devicescript] " +
            "[--accept-unverifiable-ecdsa] [--json]",
        summary:
            "verify an image as the boot stub of the target would (exit 0 valid, 1 refused); " +
            "reports a verdict per signature: passed, failed or unverifiable",
        run: imageVerify,
    },
])
