/**
 * Consent records (docs/privacy.md, "Consent"; GP-TM-10, GDPR Art. 7(1)): for each
 * consent-based category, whether the owner granted it, when (wall time, when the device
 * knew it), to which version of the privacy notice, and who relayed it. A category without
 * a record, with a withdrawn one, or with one given to an older notice is off. Pure codec.
 */

import { isCategoryId } from "./inventory"
import { parseUintText, uintText } from "./held"
import { jsonText, parseJsonList } from "./json"

export interface ConsentRecord {
    category: string
    granted: boolean
    /** Wall time of the decision, seconds since the epoch, or null when unknown. */
    at: number | null
    /** The privacy notice version the owner saw (inventory.ts NOTICE_VERSION). */
    notice: string
    /** Who relayed the decision: "console:owner" or "operator:<key id>". */
    by: string
}

const MAX_RECORDS = 16
const MAX_TEXT = 40

function isShortText(value: unknown): boolean {
    if (typeof value !== "string" || value.length < 1 || value.length > MAX_TEXT) return false
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (c < 0x21 || c > 0x7e) return false
    }
    return true
}

/**
 * `actor` as a consent record keeps it: printable ASCII without spaces, at most 40
 * characters, others replaced by '?', so that a record never fails to read back.
 */
export function consentActor(actor: string): string {
    let out = ""
    for (let i = 0; i < actor.length && out.length < MAX_TEXT; i++) {
        const c = actor.charCodeAt(i)
        out += c >= 0x21 && c <= 0x7e ? actor.charAt(i) : "?"
    }
    return out.length > 0 ? out : "?"
}

/** The "privacy.consent" prefs value for `records`. */
export function encodeConsents(records: ConsentRecord[]): string {
    const list: { [key: string]: any }[] = []
    for (let i = 0; i < records.length; i++) {
        const r = records[i]
        list.push({
            c: r.category,
            g: r.granted,
            t: r.at === null ? null : uintText(r.at),
            n: r.notice,
            by: r.by,
        })
    }
    return jsonText(list)
}

/**
 * Reads the stored records back. A record that is not exactly the stored form is left out,
 * which reads as "not granted": damage never turns processing on.
 */
export function decodeConsents(text: string | null): ConsentRecord[] {
    if (text === null) return []
    const list = parseJsonList(text)
    const out: ConsentRecord[] = []
    for (let i = 0; i < list.length && out.length < MAX_RECORDS; i++) {
        const raw = list[i]
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) continue
        if (!isCategoryId(raw["c"]) || typeof raw["g"] !== "boolean") continue
        if (!isShortText(raw["n"]) || !isShortText(raw["by"])) continue
        let at: number | null = null
        if (raw["t"] !== null) {
            at = parseUintText(raw["t"])
            if (at < 0) continue
        }
        out.push({ category: raw["c"], granted: raw["g"], at: at, notice: raw["n"], by: raw["by"] })
    }
    return out
}

/** The record for `category`, or null. */
export function consentFor(records: ConsentRecord[], category: string): ConsentRecord | null {
    for (let i = 0; i < records.length; i++) if (records[i].category === category) return records[i]
    return null
}

/** True only when the owner granted `category` against the current notice `notice`. */
export function isGranted(records: ConsentRecord[], category: string, notice: string): boolean {
    const r = consentFor(records, category)
    return r !== null && r.granted && r.notice === notice
}

/** `records` with the record of `record.category` replaced by `record`. */
export function withConsent(records: ConsentRecord[], record: ConsentRecord): ConsentRecord[] {
    const out: ConsentRecord[] = []
    for (let i = 0; i < records.length; i++)
        if (records[i].category !== record.category) out.push(records[i])
    out.push(record)
    return out
}
