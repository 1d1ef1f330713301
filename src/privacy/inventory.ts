/**
 * The declared data inventory (docs/privacy.md, "Inventory"; GP-TM-11, GP-TM-12, GP-TM-13):
 * every category of personal data the device holds, with its purpose, legal basis, retention,
 * the fields it may contain and whether it leaves the device. The privacy manager enforces
 * it: nothing outside a category's declared fields is stored or sent, and consent-based
 * categories stay off until the owner grants them. A product edits this table, nothing else.
 */

/** GDPR Art. 6(1)(a) consent, (b) contract, (c) legal obligation. */
export type LegalBasis = "consent" | "contract" | "legal-obligation"

/**
 * Where the data lives: "ram" (readings waiting to be sent, lost at power-off), "prefs"
 * (the power-safe prefs partition), or kept by another part of the firmware: "audit"
 * (the security audit log), "identity" (the device identity record and secure element).
 */
export type Holding = "ram" | "prefs" | "audit" | "identity"

/**
 * A field a category may hold. "number" is rounded to `decimals` places and must lie in
 * [min, max]; "text" is cut to `max` characters; "degrees" is a latitude or longitude
 * in [min, max], rounded to `decimals` places (2 places: about 1 km).
 */
export interface FieldSpec {
    name: string
    kind: "number" | "text" | "degrees"
    min: number
    max: number
    decimals: number
}

export interface DataCategory {
    /** Stable name: 1 to 24 of a-z, 0-9, '-'. */
    id: string
    /** What the data is, for the owner. */
    what: string
    /** The one purpose it is processed for (GP-TM-11: no other use). */
    purpose: string
    basis: LegalBasis
    /** Seconds held items are kept on the device; 0: until withdrawn or erased. */
    retentionS: number
    /** The retention in words, as the privacy notice states it. */
    retention: string
    /** Whether the device sends it anywhere, and to whom. */
    leavesDevice: boolean
    recipient: string
    holding: Holding
    /** Whether an erasure request removes it (false: kept, with the reason in `kept`). */
    erasable: boolean
    kept: string
    /** The fields an item may hold; anything else is dropped at collection. */
    fields: FieldSpec[]
    /** Most items held at once; the oldest goes first. */
    maxItems: number
    /** GDPR articles this category's handling answers. */
    articles: string[]
}

/** Version of the privacy notice the inventory matches; a consent names the one it was given to. */
export const NOTICE_VERSION = "1"

const HOUR = 3600
const DAY = 24 * HOUR

function num(name: string, min: number, max: number, decimals: number): FieldSpec {
    return { name: name, kind: "number", min: min, max: max, decimals: decimals }
}

function text(name: string, max: number): FieldSpec {
    return { name: name, kind: "text", min: 0, max: max, decimals: 0 }
}

function degrees(name: string, limit: number): FieldSpec {
    return { name: name, kind: "degrees", min: -limit, max: limit, decimals: 2 }
}

/** The demo sensor's inventory. */
export const DEFAULT_INVENTORY: DataCategory[] = [
    {
        id: "telemetry",
        what: "indoor readings of the owner's home: temperature, humidity, power draw",
        purpose: "show the owner their home's readings in the companion service",
        basis: "consent",
        retentionS: DAY,
        retention: "on the device until sent, at most 24 hours",
        leavesDevice: true,
        recipient: "the operator's backend, over mutual TLS (bulwark/<deviceId>/data/telemetry)",
        holding: "ram",
        erasable: true,
        kept: "",
        fields: [
            num("temperature", -40, 85, 1),
            num("humidity", 0, 100, 0),
            num("power", 0, 10000, 0),
        ],
        maxItems: 100,
        articles: ["6(1)(a)", "7", "5(1)(c)", "5(1)(e)"],
    },
    {
        id: "location",
        what: "the coarse position of the device the owner entered (about 1 km)",
        purpose: "weather-compensated schedules computed by the operator's backend",
        basis: "consent",
        retentionS: 0,
        retention: "until the owner withdraws consent, changes it or erases it",
        leavesDevice: true,
        recipient: "the operator's backend, over mutual TLS (bulwark/<deviceId>/data/location)",
        holding: "prefs",
        erasable: true,
        kept: "",
        fields: [degrees("lat", 90), degrees("lon", 180)],
        maxItems: 1,
        articles: ["6(1)(a)", "7", "5(1)(c)", "25"],
    },
    {
        id: "usage-history",
        what: "daily summaries: day number since 1970-01-01, energy, mean temperature",
        purpose: "show the owner their last 30 days on the local console",
        basis: "contract",
        retentionS: 30 * DAY,
        retention: "30 days from the day summarised",
        leavesDevice: false,
        recipient: "nobody: only the owner's own export",
        holding: "prefs",
        erasable: true,
        kept: "",
        fields: [
            num("day", 0, 100000, 0),
            num("energy", 0, 1000000, 0),
            num("meanTemp", -40, 85, 1),
        ],
        maxItems: 31,
        articles: ["6(1)(b)", "5(1)(e)"],
    },
    {
        id: "owner-profile",
        what: "the name and contact the owner chose to enter",
        purpose: "address the owner on the local console and in the alerts they asked for",
        basis: "contract",
        retentionS: 0,
        retention: "until the owner changes or erases it, or a factory reset",
        leavesDevice: false,
        recipient: "nobody: only the owner's own export",
        holding: "prefs",
        erasable: true,
        kept: "",
        fields: [text("name", 64), text("contact", 96)],
        maxItems: 1,
        articles: ["6(1)(b)", "16"],
    },
    {
        id: "preferences",
        what: "the owner's settings: temperature unit, display brightness, night mode",
        purpose: "run the device the way its owner set it up",
        basis: "contract",
        retentionS: 0,
        retention: "until the owner changes or erases them, or a factory reset; kept by updates",
        leavesDevice: false,
        recipient: "nobody: only the owner's own export",
        holding: "prefs",
        erasable: true,
        kept: "",
        fields: [text("unit", 1), num("brightness", 0, 100, 0), num("nightMode", 0, 1, 0)],
        maxItems: 1,
        articles: ["6(1)(b)", "16"],
    },
    {
        id: "security-log",
        what: "security events: logins, password changes, privacy requests, with their time",
        purpose: "detect and investigate attacks on the device (GP-TM-55)",
        basis: "legal-obligation",
        retentionS: 0,
        retention: "a ring on the audit partition: the oldest records are overwritten",
        leavesDevice: true,
        recipient: "the operator, only in a signed export it asked for",
        holding: "audit",
        erasable: false,
        kept: "the device's security obligations require the log; it holds no names or values",
        fields: [],
        maxItems: 0,
        articles: ["6(1)(c)", "17(3)(b)", "32"],
    },
    {
        id: "device-identity",
        what: "the device id and certificate, pseudonymous but tied to the owner's account",
        purpose: "authenticate the device to the operator's backend",
        basis: "contract",
        retentionS: 0,
        retention: "the life of the device",
        leavesDevice: true,
        recipient: "the operator's backend (TLS client certificate, topic names)",
        holding: "identity",
        erasable: false,
        kept: "without it the device cannot connect or be updated securely",
        fields: [],
        maxItems: 0,
        articles: ["6(1)(b)", "25", "32"],
    },
]

/** The category named `id` in `inventory`, or null. */
export function findCategory(inventory: DataCategory[], id: string): DataCategory | null {
    for (let i = 0; i < inventory.length; i++) if (inventory[i].id === id) return inventory[i]
    return null
}

/** The field named `name` of `category`, or null. */
export function findField(category: DataCategory, name: string): FieldSpec | null {
    for (let i = 0; i < category.fields.length; i++)
        if (category.fields[i].name === name) return category.fields[i]
    return null
}

/** True for 1 to 24 of a-z, 0-9 and '-'. */
export function isCategoryId(value: unknown): boolean {
    if (typeof value !== "string" || value.length < 1 || value.length > 24) return false
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) return false
    }
    return true
}

/** True when the privacy manager itself holds the category's items (collect, erase, export). */
export function isManaged(category: DataCategory): boolean {
    return category.holding === "ram" || category.holding === "prefs"
}

function nonEmpty(value: unknown): boolean {
    return typeof value === "string" && value.length > 0
}

/** The first problem of one category, or "" (see inventoryProblems). */
function categoryProblem(c: DataCategory): string {
    if (!isCategoryId(c.id)) return "id"
    if (!nonEmpty(c.what) || !nonEmpty(c.purpose)) return "purpose"
    if (c.basis !== "consent" && c.basis !== "contract" && c.basis !== "legal-obligation")
        return "basis"
    if (typeof c.retentionS !== "number" || c.retentionS < 0 || !nonEmpty(c.retention))
        return "retention"
    if (!nonEmpty(c.recipient)) return "recipient"
    if (c.articles.length < 1) return "articles"
    if (!c.erasable && !nonEmpty(c.kept)) return "kept"
    if (c.erasable && !isManaged(c)) return "erasable"
    if (isManaged(c) && (c.fields.length < 1 || c.maxItems < 1)) return "fields"
    // A RAM holding is lost at power-off, but while powered it must still expire.
    if (c.holding === "ram" && c.retentionS === 0) return "retention"
    if (c.basis === "consent" && !c.erasable) return "erasable"
    for (let i = 0; i < c.fields.length; i++) {
        const f = c.fields[i]
        if (!nonEmpty(f.name) || !(f.min <= f.max)) return "fields"
        if (f.decimals < 0 || f.decimals > 6 || Math.floor(f.decimals) !== f.decimals)
            return "fields"
    }
    return ""
}

/**
 * Every problem of an inventory, as "category-id: check": a category without purpose,
 * basis, retention or recipient, a consent category that could not be erased, a held
 * category without declared fields, or a duplicate id. Empty when it is complete.
 */
export function inventoryProblems(inventory: DataCategory[]): string[] {
    const out: string[] = []
    for (let i = 0; i < inventory.length; i++) {
        const problem = categoryProblem(inventory[i])
        if (problem !== "") out.push(inventory[i].id + ": " + problem)
        for (let j = 0; j < i; j++)
            if (inventory[j].id === inventory[i].id) out.push(inventory[i].id + ": duplicate")
    }
    return out
}
