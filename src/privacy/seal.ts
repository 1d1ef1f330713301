/**
 * The prefs store's seal (docs/privacy.md, "Storage"; GP-TM-31, GP-TM-12): each record is
 * MACed with an HMAC-SHA-256 secret that never leaves the secure element (SE_SLOT_PREFS),
 * so consent and preferences forged on the flash chip, even with a valid digest, are
 * refused. The secret is made at first use and replaced by a factory reset.
 */

import { concatBytes } from "../../boot/bytes"
import { SecureElementError, UnsupportedError } from "../../hal/errors"
import { SE_SLOT_PREFS, SecureElement } from "../../hal/secure-element"

export const SEAL_LENGTH = 32
/** Domain separation: this secret MACs prefs records and nothing else. */
const SEAL_LABEL = "bulwark-prefs-record-v2"
/** The audit event a refused copy is reported as (src/audit/chain.ts EVENTS.tamper). */
export const TAMPER_EVENT = "tamper"

/** Where a refused copy is reported: the audit log's append (same shape as AuditSink). */
export type TamperSink = (
    event: string,
    actor: string,
    outcome: string,
    detail: string
) => Promise<void>

/**
 * What sealing needs. `secureElement` undefined (a board without one) is refused with
 * UnsupportedError: there is no unauthenticated fallback.
 */
export interface PrefsSeal {
    secureElement: SecureElement | undefined
    /** Told of each copy refused at open; the store also keeps them (`tamperFindings`). */
    onTamper?: TamperSink
}

/** The secure element of `seal`, or UnsupportedError. */
export function sealElement(seal: PrefsSeal): SecureElement {
    const se = seal.secureElement
    if (se === undefined)
        throw new UnsupportedError("secure element (prefs store seal)")
    return se
}

function missing(e: unknown): boolean {
    return e instanceof SecureElementError && (e.code === "empty" || e.code === "zeroized")
}

/**
 * The MAC of a record's header and body. A slot that is empty (first use, after a factory
 * reset) or zeroized (tamper response) gets a new secret first: what was sealed with the
 * old one no longer verifies.
 */
export async function sealMac(se: SecureElement, header: Buffer, body: Buffer): Promise<Buffer> {
    const data = concatBytes([Buffer.from(SEAL_LABEL), header, body])
    try {
        return await se.hmac(SE_SLOT_PREFS, data)
    } catch (e) {
        if (!missing(e)) throw e
    }
    await se.generateSecret(SE_SLOT_PREFS)
    return await se.hmac(SE_SLOT_PREFS, data)
}

/**
 * Forgets the prefs secret (factory reset): records sealed before, on flash or in a dump
 * of it, never verify again. The next open makes a new one.
 */
export async function forgetSeal(se: SecureElement): Promise<void> {
    await se.clearSlot(SE_SLOT_PREFS)
}
