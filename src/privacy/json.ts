/**
 * A JSON writer whose text reads back the same on Node and DeviceScript (docs/privacy.md,
 * "Storage"). DeviceScript's JSON.stringify escapes each byte of a non-ASCII character as
 * its own \u00XX, so a name such as "Zoë" would come back from JSON.parse as mojibake: the
 * prefs record, exports and payloads are written with this instead (GP-TM-14: the owner gets
 * back exactly what was stored). Non-ASCII characters are written as they are (UTF-8).
 * Also the one reader of stored lists, for which damage reads as an empty list.
 */

const HEX = "0123456789abcdef"

function needsEscape(c: number): boolean {
    return c < 0x20 || c === 0x22 || c === 0x5c
}

function escapeOf(c: number): string {
    if (c === 0x22) return '\\"'
    if (c === 0x5c) return "\\\\"
    if (c === 0x0a) return "\\n"
    if (c === 0x0d) return "\\r"
    if (c === 0x09) return "\\t"
    return "\\u00" + HEX.charAt(Math.floor(c / 16)) + HEX.charAt(c & 15)
}

/**
 * A JSON string literal of `s`. ASCII text (its UTF-8 is as long as it is) goes to the
 * native JSON.stringify, which is right for ASCII on both targets and fast: a scan in
 * bytecode over a few KiB runs into DeviceScript's limit on loops without an await. Other
 * text is scanned here, copying runs without escapes in one slice.
 */
export function jsonString(s: string): string {
    if (Buffer.from(s).length === s.length) return JSON.stringify(s)
    let out = '"'
    let from = 0
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i)
        if (!needsEscape(c)) continue
        out += s.slice(from, i) + escapeOf(c)
        from = i + 1
    }
    return out + s.slice(from, s.length) + '"'
}

function numberText(n: number): string {
    if (n !== n || n === Infinity || n === -Infinity) return "null"
    return "" + n
}

/**
 * JSON text of a value made of objects, arrays, strings, numbers, booleans and null, which
 * JSON.parse reads back to the same value on both targets (undefined members are left out,
 * as JSON.stringify does). `depth` guards DeviceScript's call depth: past 16 levels the
 * value is written as null. Non-integer numbers print with about 7 significant digits on
 * DeviceScript, so exact integers (times, counters) are stored as decimal strings.
 */
export function jsonText(value: any, depth?: number): string {
    const level = depth === undefined ? 0 : depth
    if (value === null || value === undefined || level > 16) return "null"
    if (typeof value === "string") return jsonString(value)
    if (typeof value === "number") return numberText(value)
    if (typeof value === "boolean") return value ? "true" : "false"
    if (Array.isArray(value)) {
        const list = value as any[]
        let out = "["
        for (let i = 0; i < list.length; i++) {
            if (i > 0) out += ","
            out += list[i] === undefined ? "null" : jsonText(list[i], level + 1)
        }
        return out + "]"
    }
    if (typeof value !== "object") return "null"
    const keys = Object.keys(value)
    let out = "{"
    let first = true
    for (let i = 0; i < keys.length; i++) {
        const member = value[keys[i]]
        if (member === undefined) continue
        if (!first) out += ","
        first = false
        out += jsonString(keys[i]) + ":" + jsonText(member, level + 1)
    }
    return out + "}"
}

/** The elements of the stored JSON array `text`; none for text that is not one. */
export function parseJsonList(text: string): any[] {
    let parsed: unknown
    try {
        parsed = JSON.parse(text)
    } catch (e) {
        return []
    }
    return Array.isArray(parsed) ? (parsed as any[]) : []
}
