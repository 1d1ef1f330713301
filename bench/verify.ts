/**
 * Benchmark of image verification (GP-TM-04; DESIGN.md section 7): a signed 1 MiB image
 * through the project's path (verifyImage on SimCrypto, as the boot stub calls it), against
 * Node's own SHA-256 and ECDSA P-256 verify over the same bytes, in the same run. Prints
 * both times and the ratio (target: within 1.5x). Run: `npm run bench:verify` [--json].
 */

import { createHash, createPublicKey, verify as nodeVerify } from "node:crypto"
import { p256 } from "@noble/curves/nist.js"
import { verifyImage, VerifyPolicy } from "../boot/image"
import { HEADER_SIZE, signedMessage } from "../boot/image-format"
import { SimCrypto } from "../sim/crypto"
import { releaseAnchor, ReleasePrivateKey } from "../tools/keyfile"
import { bufferSource, buildSignedImage } from "../tools/signer"

const PAYLOAD_SIZE = 1024 * 1024
const WARMUP = 5
const ITERATIONS = 40
const DEVICE_CLASS = "bench-device"

function fixedKey(): ReleasePrivateKey {
    const privateKey = Buffer.alloc(32, 0x42)
    const publicKey = Buffer.from(p256.getPublicKey(privateKey, false))
    const keys = [{ algorithm: "ecdsa-p256-sha256" as const, privateKey, publicKey }]
    const anchor = releaseAnchor([{ algorithm: "ecdsa-p256-sha256", key: publicKey }])
    return { algorithm: "ecdsa-p256-sha256", keys, anchor }
}

function payload(): Buffer {
    const out = Buffer.alloc(PAYLOAD_SIZE)
    for (let i = 0; i < out.length; i++) out[i] = (i * 2654435761) >>> 24
    return out
}

type Name = "baseline" | "project" | "boot"

function round(value: number, digits: number): number {
    return Number(value.toFixed(digits))
}

function median(values: number[]): number {
    const sorted = values.slice(0).sort((a, b) => a - b)
    const mid = Math.floor(sorted.length / 2)
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function main(): Promise<void> {
    const json = process.argv.includes("--json")
    const key = fixedKey()
    const image = await buildSignedImage({
        payload: payload(),
        version: "1.0.0",
        counter: 1,
        deviceClass: DEVICE_CLASS,
        key,
    })
    const crypto = new SimCrypto()
    const policy: VerifyPolicy = {
        deviceClass: DEVICE_CLASS,
        minSecurityCounter: 0,
        anchors: [{ digest: key.anchor, revoked: false }],
        signaturePolicy: "classical",
        exact: true,
        keepPayload: false,
    }
    const bootPolicy: VerifyPolicy = { ...policy, keepPayload: true }

    // Baseline inputs: the same signed bytes, the signature and key from the trailer.
    const signedEnd = HEADER_SIZE + PAYLOAD_SIZE
    const signature = image.subarray(image.length - 64)
    const keyObject = createPublicKey({
        key: Buffer.concat([
            Buffer.from("3059301306072a8648ce3d020106082a8648ce3d030107034200", "hex"),
            key.keys[0].publicKey,
        ]),
        format: "der",
        type: "spki",
    })

    /** Verification alone, the payload read in 4 KiB chunks (as the update agent runs it). */
    async function project(): Promise<void> {
        await verifyImage(crypto, bufferSource(image), policy)
    }

    /** As the boot stub runs it: the payload read once, hashed and handed back. */
    async function boot(): Promise<void> {
        const verified = await verifyImage(crypto, bufferSource(image), bootPolicy)
        if (verified.payload === null) throw new Error("bench: no payload returned")
    }

    async function baseline(): Promise<void> {
        const digest = createHash("sha256").update(image.subarray(0, signedEnd)).digest()
        const message = signedMessage(digest, key.anchor)
        const ok = nodeVerify(
            "sha256",
            message,
            { key: keyObject, dsaEncoding: "ieee-p1363" },
            signature
        )
        if (!ok) throw new Error("bench: baseline signature does not verify")
    }

    const runs: Record<Name, () => Promise<void>> = { baseline, project, boot }
    const names: Name[] = ["baseline", "project", "boot"]
    const times: Record<Name, number[]> = { baseline: [], project: [], boot: [] }
    // Each variant runs in its own block (so one side's garbage is not collected inside
    // the other's timing), and the blocks run twice in opposite orders against drift.
    for (const order of [names, names.slice(0).reverse()]) {
        for (const name of order) {
            for (let i = 0; i < WARMUP + ITERATIONS / 2; i++) {
                const start = process.hrtime.bigint()
                await runs[name]()
                const ms = Number(process.hrtime.bigint() - start) / 1e6
                if (i >= WARMUP) times[name].push(ms)
            }
        }
    }

    const baselineMs = median(times.baseline)
    const projectMs = median(times.project)
    const bootMs = median(times.boot)
    const result = {
        ok: true,
        bench: "verify",
        imageBytes: image.length,
        iterations: ITERATIONS,
        baselineMedianMs: round(baselineMs, 3),
        verifyChunkedMedianMs: round(projectMs, 3),
        verifyKeepPayloadMedianMs: round(bootMs, 3),
        ratioChunked: round(projectMs / baselineMs, 2),
        ratioKeepPayload: round(bootMs / baselineMs, 2),
        target: 1.5,
    }
    if (json) {
        process.stdout.write(JSON.stringify(result) + "\n")
        return
    }
    process.stdout.write(
        [
            `verify a signed 1 MiB image (${image.length} bytes), median of ${ITERATIONS} runs`,
            `  baseline Node SHA-256 + ECDSA verify             ${baselineMs.toFixed(3)} ms`,
            `  project  verifyImage + SimCrypto, keepPayload   ${bootMs.toFixed(3)} ms` +
                `  ratio ${result.ratioKeepPayload.toFixed(2)}x`,
            `  project  verifyImage + SimCrypto, 4 KiB chunks  ${projectMs.toFixed(3)} ms` +
                `  ratio ${result.ratioChunked.toFixed(2)}x`,
            `  target: within 1.5x of the baseline (no assertion; see docs/image-format.md)`,
        ].join("\n") + "\n"
    )
}

await main()
