/**
 * Test fixtures for signed status reports (docs/update-format.md, "Status report"): a
 * device key made on the host, and the envelopes a device would sign with it, under the
 * status label or another (telemetry), for any device id and (boot, seq).
 */

import { createHash, createPrivateKey } from "node:crypto"

import { p256 } from "@noble/curves/nist.js"

import { encodeTelemetryBody, OTA_STATUS_LABEL, telemetryMessage } from "../../src/telemetry"

export interface EnvelopeSpec {
    /** Default: the signer's device id. */
    deviceId?: string
    boot: number
    seq: number
    /** Default: OTA_STATUS_LABEL. */
    label?: string
}

export interface HostSigner {
    deviceId: string
    /** 65-byte uncompressed P-256 public key. */
    publicKey: Buffer
    /** The envelope of `body` signed with this key as `spec` says. */
    envelope(body: Buffer, spec: EnvelopeSpec): Buffer
}

/** A signer for the host-made P-256 key `keyPem` (test/transport/fixtures.ts credentials). */
export function hostSigner(keyPem: string, deviceId: string): HostSigner {
    const jwk = createPrivateKey(keyPem).export({ format: "jwk" })
    const secret = Buffer.from(jwk.d as string, "base64url")
    const publicKey = Buffer.from(p256.getPublicKey(secret, false))
    return {
        deviceId,
        publicKey,
        envelope(body: Buffer, spec: EnvelopeSpec): Buffer {
            const signed = encodeTelemetryBody({
                deviceId: spec.deviceId ?? deviceId,
                boot: spec.boot,
                seq: spec.seq,
                time: 0,
                body,
            })
            const digest = createHash("sha256")
                .update(telemetryMessage(signed, spec.label ?? OTA_STATUS_LABEL))
                .digest()
            const signature = p256.sign(digest, secret, { prehash: false, lowS: true })
            return Buffer.concat([signed, Buffer.from(signature)])
        },
    }
}
