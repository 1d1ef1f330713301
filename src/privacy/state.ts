/**
 * The privacy manager's stored state (docs/privacy.md, "Storage"; GP-TM-10, GP-TM-12): the
 * prefs keys it owns, its audit event names and error, and the pure planning of what to
 * write: reconciling stored items with the inventory at start, purging by retention,
 * adding an item to a category. No I/O here; the manager applies the plans.
 */

import { Prefs, PrefsChanges } from "../prefs"
import { ConsentRecord, isGranted } from "./consent"
import { HeldItem, decodeHeld, encodeHeld, isExpired, parseUintText, uintText } from "./held"
import { DataCategory, findCategory } from "./inventory"
import { jsonText } from "./json"
import { CheckError } from "../../hal/errors"

/** Prefs keys the privacy manager owns. */
export const KEY_CONSENT = "privacy.consent"
export const KEY_RESTRICTED = "privacy.restricted"
/** "pd.<category>": the stored items of a category held in prefs. */
export const HELD_PREFIX = "pd."
/** Keys of device state that is not personal data; an erasure keeps them. */
export const KEPT_PREFIX = "dev."

/** Audit event names (docs/privacy.md, "Audit"). */
export const EVENT_CONSENT = "privacy-consent"
export const EVENT_REQUEST = "privacy-request"
export const EVENT_RETENTION = "privacy-retention"

/**
 * Where privacy events go: the audit log's append in the firmware. `outcome` is one of
 * "success", "failure", "refused", "info"; `detail` names categories, rights and counts,
 * never a personal value, because the audit log outlives an erasure.
 */
export type AuditSink = (
    event: string,
    actor: string,
    outcome: string,
    detail: string
) => Promise<void>

/**
 * Checks: "inventory" (incomplete, see inventoryProblems), "category" (unknown or not held
 * here), "field", "value", "consent" (the category needs consent the owner has not given,
 * or is not consent-based), "key" (not a "dev." device-state key).
 */
export class PrivacyError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "privacy: " + check + ": " + message)
        this.name = "PrivacyError"
    }
}

/** The stored form of a restriction that began at `at`. */
export function restrictionText(at: number | null): string {
    return jsonText({ t: at === null ? null : uintText(at) })
}

/** The wall time a stored restriction began, or null. */
export function restrictionTime(text: string): number | null {
    try {
        const parsed = JSON.parse(text)
        if (parsed === null || typeof parsed !== "object") return null
        const t = parseUintText(parsed["t"])
        return t < 0 ? null : t
    } catch (e) {
        return null
    }
}

export function itemsOf(items: HeldItem[], id: string): HeldItem[] {
    const out: HeldItem[] = []
    for (let i = 0; i < items.length; i++) if (items[i].category === id) out.push(items[i])
    return out
}

export function itemsExcept(items: HeldItem[], id: string): HeldItem[] {
    const out: HeldItem[] = []
    for (let i = 0; i < items.length; i++) if (items[i].category !== id) out.push(items[i])
    return out
}

export function joined(a: HeldItem[], b: HeldItem[]): HeldItem[] {
    const out: HeldItem[] = []
    for (let i = 0; i < a.length; i++) out.push(a[i])
    for (let i = 0; i < b.length; i++) out.push(b[i])
    return out
}

/** `names` without the first `name` in it (one entry per request in flight). */
export function removeOne(names: string[], name: string): string[] {
    const out: string[] = []
    let removed = false
    for (let i = 0; i < names.length; i++) {
        if (!removed && names[i] === name) removed = true
        else out.push(names[i])
    }
    return out
}

/** `list` (the items of category `c`) with a new item added, the oldest beyond maxItems
 *  dropped; a single-item category merges `fields` into the item it holds instead. */
export function withItem(
    c: DataCategory,
    list: HeldItem[],
    fields: { [name: string]: number | string },
    at: number | null
): HeldItem[] {
    if (c.maxItems === 1 && list.length > 0) {
        const merged: { [name: string]: number | string } = {}
        const old = Object.keys(list[0].fields)
        for (let i = 0; i < old.length; i++) merged[old[i]] = list[0].fields[old[i]]
        const add = Object.keys(fields)
        for (let i = 0; i < add.length; i++) merged[add[i]] = fields[add[i]]
        return [{ category: c.id, fields: merged, at: at, mono: -1 }]
    }
    const out = list.slice(0)
    out.push({ category: c.id, fields: fields, at: at, mono: -1 })
    return out.length > c.maxItems ? out.slice(out.length - c.maxItems) : out
}

export interface PurgePlan {
    keep: HeldItem[]
    removed: number
    /** The prefs write, or null when only RAM items expired. */
    changes: PrefsChanges | null
}

/** Which items outlived their retention now, and the prefs write that removes them. */
export function purgePlan(
    items: HeldItem[],
    inventory: DataCategory[],
    wall: number | null,
    mono: number
): PurgePlan {
    const keep: HeldItem[] = []
    let removed = 0
    let flashChanged = false
    for (let i = 0; i < items.length; i++) {
        const c = findCategory(inventory, items[i].category)
        if (c !== null && !isExpired(items[i], c, wall, mono)) {
            keep.push(items[i])
            continue
        }
        removed++
        if (c !== null && c.holding === "prefs") flashChanged = true
    }
    if (!flashChanged) return { keep: keep, removed: removed, changes: null }
    const changes: PrefsChanges = {}
    for (let i = 0; i < inventory.length; i++) {
        const c = inventory[i]
        if (c.holding !== "prefs") continue
        const list = itemsOf(keep, c.id)
        changes[HELD_PREFIX + c.id] = list.length > 0 ? encodeHeld(list) : null
    }
    return { keep: keep, removed: removed, changes: changes }
}

export interface ReconcilePlan {
    /** The items to hold: stored ones the inventory still declares and consent allows. */
    items: HeldItem[]
    /** Rewrites of "pd." keys whose stored text differs from that (empty: nothing to do). */
    changes: PrefsChanges
}

/**
 * Compares what `prefs` stores under "pd." with the inventory (GP-TM-11): a category it no
 * longer declares or no longer holds in prefs, a field it dropped, or a consent category
 * without a grant to `notice` is removed.
 */
export function reconcilePlan(
    prefs: Prefs,
    inventory: DataCategory[],
    consents: ConsentRecord[],
    notice: string
): ReconcilePlan {
    let items: HeldItem[] = []
    const changes: PrefsChanges = {}
    const keys = prefs.keys()
    for (let i = 0; i < keys.length; i++) {
        if (keys[i].indexOf(HELD_PREFIX) !== 0) continue
        const c = findCategory(inventory, keys[i].slice(HELD_PREFIX.length))
        const allowed =
            c !== null &&
            c.holding === "prefs" &&
            (c.basis !== "consent" || isGranted(consents, c.id, notice))
        const stored = prefs.get(keys[i])
        const list = allowed && c !== null && stored !== null ? decodeHeld(c, stored) : []
        const text = list.length > 0 ? encodeHeld(list) : null
        if (text !== stored) changes[keys[i]] = text
        items = joined(items, list)
    }
    return { items: items, changes: changes }
}
