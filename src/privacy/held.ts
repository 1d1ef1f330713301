/**
 * Items of personal data the device holds (docs/privacy.md, "Minimisation and retention";
 * GP-TM-12): collection keeps only a category's declared fields, bounded and rounded as the
 * inventory says; retention is checked on the HAL clock; the stored and sent forms carry no
 * identifier at all (the topic names the device, nothing names the owner). Pure functions.
 */

import { decimalDigits, parseDecimal } from "../../boot/decimal"
import { DataCategory, FieldSpec } from "./inventory"
import { jsonText, parseJsonList } from "./json"

/** One held item of a category. */
export interface HeldItem {
    category: string
    fields: { [name: string]: number | string }
    /** Wall time of collection, seconds since the epoch, or null when it was unknown. */
    at: number | null
    /** Monotonic milliseconds of collection in this run; -1 for items read from flash. */
    mono: number
}

/** Largest integer `uintText` and `parseUintText` carry exactly: 2^32 - 1. */
export const MAX_UINT_TEXT = 4294967295

/**
 * An unsigned integer in decimal, exactly: DeviceScript prints numbers past about seven
 * digits lossily, so times and counters are stored and sent as these strings.
 */
export function uintText(value: number): string {
    if (!(value >= 0) || value > MAX_UINT_TEXT || Math.floor(value) !== value) return "0"
    return decimalDigits(value)
}

/** The value of 1 to 10 decimal digits (no sign, no leading zero) up to 2^32 - 1, or -1. */
export function parseUintText(text: unknown): number {
    if (typeof text !== "string") return -1
    return parseDecimal(text, 10, MAX_UINT_TEXT)
}

function isFiniteNumber(value: unknown): boolean {
    return typeof value === "number" && value === value && value !== Infinity && value !== -Infinity
}

function roundTo(value: number, decimals: number): number {
    const scale = Math.pow(10, decimals)
    return Math.round(value * scale) / scale
}

/** Printable text: control characters (below 0x20, and 0x7f) removed, cut to `max`. */
function cleanText(value: string, max: number): string {
    let out = ""
    for (let i = 0; i < value.length && out.length < max; i++) {
        const c = value.charCodeAt(i)
        if (c >= 0x20 && c !== 0x7f) out += value.charAt(i)
    }
    return out
}

/** One field's stored form, or null when the value does not fit its spec. */
export function minimiseField(spec: FieldSpec, value: unknown): number | string | null {
    if (spec.kind === "text") {
        if (typeof value !== "string") return null
        return cleanText(value, spec.max)
    }
    if (!isFiniteNumber(value)) return null
    const n = value as number
    if (n < spec.min || n > spec.max) return null
    return roundTo(n, spec.decimals)
}

/**
 * The fields of `input` that `category` declares, each minimised (GP-TM-12); every other
 * key is dropped. Null when no declared field has a valid value.
 */
export function minimise(
    category: DataCategory,
    input: { [name: string]: unknown }
): { [name: string]: number | string } | null {
    if (input === null || typeof input !== "object") return null
    const out: { [name: string]: number | string } = {}
    let kept = 0
    for (let i = 0; i < category.fields.length; i++) {
        const spec = category.fields[i]
        const value = minimiseField(spec, input[spec.name])
        if (value === null) continue
        out[spec.name] = value
        kept++
    }
    return kept > 0 ? out : null
}

/**
 * True when `item` has outlived its category's retention, by the monotonic clock for items
 * collected in this run, by the wall clock for items read from flash (when it is known).
 */
export function isExpired(
    item: HeldItem,
    category: DataCategory,
    nowWall: number | null,
    nowMono: number
): boolean {
    if (category.retentionS <= 0) return false
    if (item.mono >= 0 && nowMono - item.mono > category.retentionS * 1000) return true
    return item.at !== null && nowWall !== null && nowWall - item.at > category.retentionS
}

/** The stored and exported form of one item: {"t": "<seconds>" or null, "f": {fields}}. */
function itemJson(item: HeldItem): { [key: string]: any } {
    return { t: item.at === null ? null : uintText(item.at), f: item.fields }
}

/** The "pd.<category>" prefs value for `items` (all of one category). */
export function encodeHeld(items: HeldItem[]): string {
    const list: { [key: string]: any }[] = []
    for (let i = 0; i < items.length; i++) list.push(itemJson(items[i]))
    return jsonText(list)
}

/**
 * Reads a stored "pd.<category>" value back, minimising each item again against the
 * current inventory: a field the inventory no longer declares is dropped, and so is an
 * item left without fields. Anything that is not the stored form reads as nothing.
 */
export function decodeHeld(category: DataCategory, text: string): HeldItem[] {
    const list = parseJsonList(text)
    const out: HeldItem[] = []
    for (let i = 0; i < list.length && out.length < category.maxItems; i++) {
        const raw = list[i]
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) continue
        let at: number | null = null
        if (raw["t"] !== null) {
            at = parseUintText(raw["t"])
            if (at < 0) continue
        }
        const f = raw["f"]
        if (f === null || typeof f !== "object" || Array.isArray(f)) continue
        const fields = minimise(category, f)
        if (fields === null) continue
        out.push({ category: category.id, fields: fields, at: at, mono: -1 })
    }
    return out
}

/** The item as it appears in an export: {"t", "f"}. */
export function exportItem(item: HeldItem): { [key: string]: any } {
    return itemJson(item)
}

/**
 * What is published for one item: {"v":1,"c":category,"t":time or null,"d":{fields}}.
 * No device id (the topic carries it), no owner name, account or address (GP-TM-12).
 */
export function publishPayload(item: HeldItem): Buffer {
    const body = {
        v: 1,
        c: item.category,
        t: item.at === null ? null : uintText(item.at),
        d: item.fields,
    }
    return Buffer.from(jsonText(body))
}
