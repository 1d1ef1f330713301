/**
 * What the audit chain hashes, MACs and signs (docs/audit-log.md, "Chain and keys";
 * GP-TM-55), shared by the device's log and the offline verifier so both read the same
 * bytes. Every label is domain-separated, so no signature made here can be replayed as a
 * TLS, image or telemetry signature of the same identity key, nor the other way round.
 */

import { concatBytes } from "../../boot/bytes"
import { Crypto } from "../../hal/crypto"
import { SecureElementError } from "../../hal/errors"
import { SE_SLOT_AUDIT, SE_SLOT_IDENTITY, SecureElement } from "../../hal/secure-element"

/** HMAC input prefix for the per-record MAC made in the secure element. */
export const MAC_LABEL = "bulwark-audit-mac-v1"
/** Prefix of the message a checkpoint signature covers. */
export const CHECKPOINT_LABEL = "bulwark-audit-checkpoint-v1"
/** Prefix of the message an export header signature covers. */
export const EXPORT_LABEL = "bulwark-audit-export-v1"
/** Prefix of the message an operator signs to ask for an export. */
export const EXPORT_REQUEST_LABEL = "bulwark-audit-export-request-v1"

/** Stable event names (docs/audit-log.md lists what each one records). */
export const EVENTS = {
    boot: "boot",
    update: "update",
    login: "login",
    logout: "logout",
    account: "account",
    passwordChange: "password-change",
    accessRights: "access-rights",
    securityRule: "security-rule",
    override: "security-override",
    tamper: "tamper",
    config: "config",
    timeSet: "time-set",
    logExport: "log-export",
    certRenewal: "cert-renewal",
    factoryReset: "factory-reset",
    recovery: "recovery",
    rateLimit: "rate-limit",
    checkpoint: "audit-checkpoint",
    recycle: "audit-recycle",
    integrity: "audit-integrity",
    keyLost: "audit-key-lost",
}

/** The hash that links a frame into the chain: SHA-256 over the whole frame. */
export function frameHash(crypto: Crypto, frame: Buffer): Buffer {
    return crypto.sha256([frame])
}

/** The data the secure element MACs for a record. */
export function macInput(body: Buffer): Buffer {
    return concatBytes([Buffer.from(MAC_LABEL), body])
}

/** The message a checkpoint signature covers: its body (seq, epoch, prev hash...) and MAC. */
export function checkpointMessage(body: Buffer, mac: Buffer): Buffer {
    return concatBytes([Buffer.from(CHECKPOINT_LABEL), body, mac])
}

/** The 32-byte digest the secure element signs for a message (ECDSA P-256, SHA-256). */
export function signedDigest(crypto: Crypto, message: Buffer): Buffer {
    return crypto.sha256([message])
}

/** The 32 zero bytes the first record of a fresh log links to. */
export function genesisHash(): Buffer {
    return Buffer.alloc(32)
}

/** The secure element's MAC of a record body, or null when the audit slot holds no key. */
export async function auditMacOrNull(se: SecureElement, body: Buffer): Promise<Buffer | null> {
    try {
        return await se.hmac(SE_SLOT_AUDIT, macInput(body))
    } catch (e) {
        if (e instanceof SecureElementError && (e.code === "empty" || e.code === "zeroized"))
            return null
        throw e
    }
}

/** The identity public key, or null on a device not provisioned yet. */
export async function identityKeyOrNull(se: SecureElement): Promise<Buffer | null> {
    try {
        return await se.publicKey(SE_SLOT_IDENTITY)
    } catch (e) {
        if (e instanceof SecureElementError) return null
        throw e
    }
}
