/**
 * The trust checks of a signed trailer (docs/image-format.md, docs/signatures.md; GP-TM-03,
 * GP-TM-04, GP-TM-34): key digest against the OTP anchors, public keys against the key
 * digest, the signature policy (classical, hybrid, pq-only) and a verdict per signature.
 * Shared by images (boot/image.ts) and update offers (ota/offer.ts).
 */

import { equalBytes } from "./bytes"
import { anchorDigest, PublicKeyEntry } from "./anchor"
import { SignaturePolicy } from "./profile"
import { ImageError, ImageTrailer, SignatureEntry, SignatureReport } from "./image-format"
import { Crypto, SignatureAlgorithm } from "../hal/crypto"
import { OtpKeySlot } from "../hal/otp"

/**
 * The OTP slot holding `keyDigest`. Every slot is visited; a revoked slot with this digest
 * refuses the key even if another slot holds it unrevoked.
 */
function findKeySlot(anchors: OtpKeySlot[], keyDigest: Buffer): number {
    let found = -1
    let revoked = false
    for (let i = 0; i < anchors.length; i++) {
        const slot = anchors[i]
        if (slot.digest === null || !equalBytes(slot.digest, keyDigest)) continue
        if (slot.revoked) revoked = true
        else if (found < 0) found = i
    }
    if (revoked) throw new ImageError("key-revoked", "signing key is revoked")
    if (found < 0) throw new ImageError("key-unknown", "signing key is not a trust anchor")
    return found
}

/**
 * The key digest must be an unrevoked OTP anchor and the trailer's public keys must hash to
 * it (boot/anchor.ts). Returns the matching key slot. Cheap: runs before any hashing.
 */
export function checkSigner(crypto: Crypto, trailer: ImageTrailer, anchors: OtpKeySlot[]): number {
    const keySlot = findKeySlot(anchors, trailer.keyDigest)
    let identity: Buffer
    try {
        identity = anchorDigest(crypto, trailer.publicKeys)
    } catch {
        throw new ImageError("public-key", "public keys do not form an identity")
    }
    if (!equalBytes(identity, trailer.keyDigest))
        throw new ImageError("public-key", "public keys do not match the key digest")
    return keySlot
}

function hasKey(keys: PublicKeyEntry[], algorithm: SignatureAlgorithm): boolean {
    for (let i = 0; i < keys.length; i++) if (keys[i].algorithm === algorithm) return true
    return false
}

/** The signature algorithms that must verify under `policy` for this identity. */
function requiredAlgorithms(
    policy: SignaturePolicy,
    keys: PublicKeyEntry[]
): SignatureAlgorithm[] {
    const required: SignatureAlgorithm[] = []
    if (policy === "classical") {
        if (hasKey(keys, "ecdsa-p256-sha256")) required.push("ecdsa-p256-sha256")
        if (hasKey(keys, "ed25519")) required.push("ed25519")
    } else if (policy === "hybrid") {
        if (hasKey(keys, "ecdsa-p256-sha256") && hasKey(keys, "slh-dsa-sha2-128s")) {
            required.push("ecdsa-p256-sha256")
            required.push("slh-dsa-sha2-128s")
        }
    } else if (policy === "pq-only") {
        if (hasKey(keys, "slh-dsa-sha2-128s")) required.push("slh-dsa-sha2-128s")
    }
    if (required.length === 0)
        throw new ImageError("signature-policy", "identity cannot meet the signature policy")
    return required
}

function keyFor(keys: PublicKeyEntry[], algorithm: SignatureAlgorithm): Buffer {
    for (let i = 0; i < keys.length; i++) if (keys[i].algorithm === algorithm) return keys[i].key
    throw new ImageError("signature", "signature without a public key of its algorithm")
}

function hasSignature(signatures: SignatureEntry[], algorithm: SignatureAlgorithm): boolean {
    for (let i = 0; i < signatures.length; i++)
        if (signatures[i].algorithm === algorithm) return true
    return false
}

/**
 * The structural signature checks, cheap and run before any hashing: the identity can meet
 * the policy, every signature has a public key of the identity (so none is signed by a key
 * outside the anchor), and every algorithm the policy requires has its signature (a stripped
 * half is refused here; duplicates never get past decodeTrailer). Returns the required list.
 */
export function planSignatures(
    policy: SignaturePolicy,
    trailer: ImageTrailer
): SignatureAlgorithm[] {
    const required = requiredAlgorithms(policy, trailer.publicKeys)
    for (let i = 0; i < trailer.signatures.length; i++)
        keyFor(trailer.publicKeys, trailer.signatures[i].algorithm)
    for (let i = 0; i < required.length; i++)
        if (!hasSignature(trailer.signatures, required[i]))
            throw new ImageError("signature-policy", "a signature the policy requires is missing")
    return required
}

function verdictOf(reports: SignatureReport[], algorithm: SignatureAlgorithm): string {
    for (let i = 0; i < reports.length; i++)
        if (reports[i].algorithm === algorithm) return reports[i].verdict
    return "missing"
}

/**
 * The device-target rule (VerifyPolicy.acceptUnverifiableEcdsa): under "hybrid" only, the
 * ECDSA half may stay "unverifiable" on a board that cannot check it, when the SLH-DSA
 * half passed on this board.
 */
function mayStayUnverifiable(
    policy: SignaturePolicy,
    algorithm: SignatureAlgorithm,
    reports: SignatureReport[],
    acceptUnverifiableEcdsa: boolean
): boolean {
    if (acceptUnverifiableEcdsa !== true || policy !== "hybrid") return false
    if (algorithm !== "ecdsa-p256-sha256") return false
    return verdictOf(reports, "slh-dsa-sha2-128s") === "passed"
}

function refused(check: string, message: string, reports: SignatureReport[]): ImageError {
    const err = new ImageError(check, message)
    err.signatures = reports
    return err
}

/**
 * Verifies every signature this board can check and reports each one: "passed", "failed",
 * or "unverifiable" when crypto.verifiers() lacks its algorithm (never "passed"). Then
 * decides: any "failed" signature refuses ("signature"), required or not, so a bad one is
 * never ignored where it can be seen; a required one that is "unverifiable" refuses
 * ("signature-unverifiable") unless the device-target rule lets the ECDSA half of a hybrid
 * identity stay so. `required` comes from planSignatures.
 */
export async function checkSignatures(
    crypto: Crypto,
    policy: SignaturePolicy,
    required: SignatureAlgorithm[],
    trailer: ImageTrailer,
    message: Buffer,
    acceptUnverifiableEcdsa: boolean
): Promise<SignatureReport[]> {
    const available = crypto.verifiers()
    const reports: SignatureReport[] = []
    for (let i = 0; i < trailer.signatures.length; i++) {
        const entry: SignatureEntry = trailer.signatures[i]
        const report: SignatureReport = {
            algorithm: entry.algorithm,
            verdict: "unverifiable",
            required: required.indexOf(entry.algorithm) >= 0,
        }
        if (available.indexOf(entry.algorithm) >= 0) {
            const key = keyFor(trailer.publicKeys, entry.algorithm)
            const ok = await crypto.verify(entry.algorithm, key, message, entry.signature)
            report.verdict = ok === true ? "passed" : "failed"
        }
        reports.push(report)
    }
    for (let i = 0; i < reports.length; i++)
        if (reports[i].verdict === "failed")
            throw refused("signature", "signature does not verify", reports)
    for (let i = 0; i < reports.length; i++) {
        const r = reports[i]
        if (!r.required || r.verdict === "passed") continue
        if (mayStayUnverifiable(policy, r.algorithm, reports, acceptUnverifiableEcdsa)) continue
        throw refused(
            "signature-unverifiable",
            "this board cannot verify a signature the policy requires",
            reports
        )
    }
    return reports
}

/** Options of the trust checks beyond the profile's signature policy. */
export interface TrustOptions {
    /** The device-target rule; see VerifyPolicy.acceptUnverifiableEcdsa. Absent: false. */
    acceptUnverifiableEcdsa?: boolean
}

/** The outcome of checkTrailerTrust. */
export interface TrailerTrust {
    /** The OTP key slot whose anchor matched. */
    keySlot: number
    /** One verdict per signature of the trailer, in trailer order. */
    signatures: SignatureReport[]
}

/**
 * The trust checks of a signed trailer, shared with update offers (ota/offer.ts): the key
 * digest against the OTP slots, the public keys against the key digest, the signatures the
 * policy requires present, then every signature the board can check verified over
 * `message`. Returns the OTP key slot and the per-signature verdicts; ImageError naming the
 * failed check ("key-revoked", "key-unknown", "public-key", "signature-policy",
 * "signature", "signature-unverifiable"), with `signatures` set for the last two.
 */
export async function checkTrailerTrust(
    crypto: Crypto,
    trailer: ImageTrailer,
    message: Buffer,
    anchors: OtpKeySlot[],
    policy: SignaturePolicy,
    options?: TrustOptions
): Promise<TrailerTrust> {
    const keySlot = checkSigner(crypto, trailer, anchors)
    const required = planSignatures(policy, trailer)
    const accept = options !== undefined && options.acceptUnverifiableEcdsa === true
    const reports = await checkSignatures(crypto, policy, required, trailer, message, accept)
    return { keySlot: keySlot, signatures: reports }
}

/** checkTrailerTrust returning the key slot alone (the API update offers started with). */
export async function verifyTrailerTrust(
    crypto: Crypto,
    trailer: ImageTrailer,
    message: Buffer,
    anchors: OtpKeySlot[],
    policy: SignaturePolicy,
    options?: TrustOptions
): Promise<number> {
    return (await checkTrailerTrust(crypto, trailer, message, anchors, policy, options)).keySlot
}
