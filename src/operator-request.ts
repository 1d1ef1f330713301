/**
 * The authorisation every operator-signed request to the device passes: audit export,
 * attestation and certificate renewal (GP-TM-24, GP-TM-41, GP-TM-55). This device, an
 * operator key listed in the profile's security.operatorKeys, a signature the secure element
 * verifies, not expired when the device knows the time, and a nonce not seen since boot.
 * Each request format decodes its own fields and reports the failed check with its own error.
 */

import { Clock } from "../hal/clock"
import { SecureElement } from "../hal/secure-element"

/** Nonces remembered per context: enough against replays within one boot. */
export const RECENT_NONCES = 16

/** What the device holds to authorise requests of one kind. */
export interface OperatorAuthority {
    secureElement: SecureElement
    clock: Clock
    deviceId: string
    /** Operator public keys (65-byte P-256) of the profile's security.operatorKeys. */
    operatorKeys: Buffer[]
    /** Nonces of recent requests, kept in RAM against replays within this boot. */
    recentNonces: string[]
}

/** The fields of a decoded request that its authorisation reads. */
export interface SignedRequest {
    deviceId: string
    operatorKey: Buffer
    /** SHA-256 of the request's label and signed part. */
    digest: Buffer
    signature: Buffer
    /** Wall-clock seconds after which the request is refused; 0 for none. */
    expires: number
    nonce: Buffer
}

export interface OperatorRefusal {
    /** "device", "operator", "signature", "expired" or "replayed". */
    check: string
    message: string
}

/**
 * Null when `request` is authorised, its nonce then remembered; otherwise the first check
 * it fails, with nothing remembered. A power cut during the signature check propagates.
 */
export async function checkOperatorRequest(
    authority: OperatorAuthority,
    request: SignedRequest
): Promise<OperatorRefusal | null> {
    if (request.deviceId !== authority.deviceId)
        return { check: "device", message: "not this device" }
    const key = request.operatorKey.toString("hex")
    let listed = false
    for (let i = 0; i < authority.operatorKeys.length; i++)
        if (authority.operatorKeys[i].toString("hex") === key) listed = true
    if (!listed) return { check: "operator", message: "operator key not authorised" }

    const se = authority.secureElement
    const ok = await se.verifyDigest(request.operatorKey, request.digest, request.signature)
    if (!ok) return { check: "signature", message: "request signature" }

    const now = authority.clock.wallTime()
    if (request.expires !== 0 && now !== null && now > request.expires)
        return { check: "expired", message: "request expired" }
    const nonce = request.nonce.toString("hex")
    if (authority.recentNonces.indexOf(nonce) >= 0) return { check: "replayed", message: "nonce seen" }
    authority.recentNonces.push(nonce)
    while (authority.recentNonces.length > RECENT_NONCES) authority.recentNonces.shift()
    return null
}
