/**
 * The owner's data export (docs/privacy.md, "Access and portability"; GP-TM-14, GDPR
 * Art. 15 and 20): one JSON document with every item the device holds about its owner, the
 * consent and restriction records, and for each category the purpose, legal basis,
 * recipients and retention Art. 15(1) asks for. Machine-readable, so it ports to another
 * service. Times are decimal strings of seconds since the epoch (exact on every target).
 */

import { exportItem, uintText } from "./held"
import { isManaged } from "./inventory"
import { PrivacyManager } from "./manager"
import { jsonText } from "./json"

export const EXPORT_FORMAT = "bulwark-privacy-export"
export const EXPORT_VERSION = 1

/** Where the data the manager does not hold can be had, by holding. */
const ELSEWHERE: { [holding: string]: string } = {
    audit: "the signed audit-log export (docs/audit-log.md), on request to the operator",
    identity: "the device id below; the certificate is public",
}

/** What Art. 13(1) and 15(1) ask about each category: purpose, basis, recipients, retention. */
function categoryList(m: PrivacyManager): { [key: string]: any }[] {
    const out: { [key: string]: any }[] = []
    const inventory = m.categories()
    for (let i = 0; i < inventory.length; i++) {
        const c = inventory[i]
        out.push({
            id: c.id,
            what: c.what,
            purpose: c.purpose,
            basis: c.basis,
            retention: c.retention,
            leavesDevice: c.leavesDevice,
            recipient: c.recipient,
            erasable: c.erasable,
        })
    }
    return out
}

/** The export document as a JSON object (see exportText). */
export function exportObject(
    m: PrivacyManager,
    deviceId: string,
    wall: number | null
): { [key: string]: any } {
    const data: { [key: string]: any } = {}
    const elsewhere: { [key: string]: any } = {}
    const inventory = m.categories()
    for (let i = 0; i < inventory.length; i++) {
        const c = inventory[i]
        if (!isManaged(c)) {
            elsewhere[c.id] = ELSEWHERE[c.holding]
            continue
        }
        const items: { [key: string]: any }[] = []
        const held = m.held(c.id)
        for (let j = 0; j < held.length; j++) items.push(exportItem(held[j]))
        data[c.id] = items
    }

    const consents: { [key: string]: any }[] = []
    const records = m.consents()
    for (let i = 0; i < records.length; i++) {
        const r = records[i]
        consents.push({
            category: r.category,
            granted: r.granted,
            at: r.at === null ? null : uintText(r.at),
            notice: r.notice,
            by: r.by,
        })
    }
    const since = m.restrictedSince()
    return {
        format: EXPORT_FORMAT,
        v: EXPORT_VERSION,
        deviceId: deviceId,
        exportedAt: wall === null ? null : uintText(wall),
        notice: m.noticeVersion(),
        restricted: m.isRestricted() ? { at: since === null ? null : uintText(since) } : null,
        consents: consents,
        categories: categoryList(m),
        data: data,
        elsewhere: elsewhere,
    }
}

/** The export document as text. */
export function exportText(m: PrivacyManager, deviceId: string, wall: number | null): string {
    return jsonText(exportObject(m, deviceId, wall))
}

/** The right to information (GDPR Art. 13, 14): the inventory alone, no personal data. */
export function infoObject(m: PrivacyManager): { [key: string]: any } {
    return {
        format: "bulwark-privacy-info",
        v: EXPORT_VERSION,
        notice: m.noticeVersion(),
        categories: categoryList(m),
    }
}
