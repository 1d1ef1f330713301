/**
 * The prefs store's record format (docs/privacy.md, "Storage"; GP-TM-20, GP-TM-31): key
 * names, the unsealed (version 1) and sealed (version 2) copy layouts, and reading one
 * copy back with the reason it was refused. The store itself (two copies, power-safe
 * writes) is src/prefs.ts.
 */

import { equalBytes, readU32, writeU32 } from "../../boot/bytes"
import { Crypto } from "../../hal/crypto"
import { FlashPartition } from "../../hal/flash"
import { SecureElement } from "../../hal/secure-element"
import { jsonText } from "./json"
import { SEAL_LENGTH, sealMac } from "./seal"


/**
 * Copy layout, big-endian: magic "BWPF" | version u8 | 3 reserved (0) | seq u32 |
 * body length u32 | body (a JSON object of string values, UTF-8) | SHA-256 over header and
 * body | (version 2, sealed) HMAC-SHA-256 by the secure element over a label, header and
 * body; padded with 0xFF to the write alignment.
 */
const MAGIC = "BWPF"
const FORMAT_VERSION = 1
const SEALED_VERSION = 2
export const HEADER_LENGTH = 16
export const DIGEST_LENGTH = 32

/** Keys: 1 to 48 of a-z, 0-9, '.', '-', '_'. */
export const MAX_KEY_LENGTH = 48

/** True for 1 to MAX_KEY_LENGTH characters of a-z, 0-9, '.', '-', '_'. */
export function isPrefsKey(key: unknown): boolean {
    if (typeof key !== "string" || key.length < 1 || key.length > MAX_KEY_LENGTH) return false
    for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i)
        const ok =
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d ||
            c === 0x5f
        if (!ok) return false
    }
    return true
}


/**
 * Serialises `values` with sequence number `seq`, padded with 0xFF to the write alignment.
 * The check value is SHA-256 over header and body: native on every target, where a bytewise
 * CRC over a 4 KiB record runs into DeviceScript's limit on loops without an await.
 */
export function encodePrefsRecord(
    crypto: Crypto,
    values: { [key: string]: string },
    seq: number,
    align: number
): Buffer {
    const body = Buffer.from(jsonText(values))
    const header = recordHeader(FORMAT_VERSION, seq, body.length)
    return laidOut([header, body, crypto.sha256([header, body])], align)
}

/** A sealed (version 2) record: as above, then the secure element's MAC. */
export async function encodeSealedRecord(
    crypto: Crypto,
    se: SecureElement,
    values: { [key: string]: string },
    seq: number,
    align: number
): Promise<Buffer> {
    const body = Buffer.from(jsonText(values))
    const header = recordHeader(SEALED_VERSION, seq, body.length)
    const mac = await sealMac(se, header, body)
    return laidOut([header, body, crypto.sha256([header, body]), mac], align)
}

function recordHeader(version: number, seq: number, bodyLength: number): Buffer {
    const header = Buffer.alloc(HEADER_LENGTH)
    header.set(Buffer.from(MAGIC), 0)
    header[4] = version
    writeU32(header, 8, seq)
    writeU32(header, 12, bodyLength)
    return header
}

/** The parts one after the other, padded with 0xFF to the write alignment. */
function laidOut(parts: Buffer[], align: number): Buffer {
    let length = 0
    for (let i = 0; i < parts.length; i++) length += parts[i].length
    const out = Buffer.alloc(Math.ceil(length / align) * align)
    let at = 0
    for (let i = 0; i < parts.length; i++) {
        out.set(parts[i], at)
        at += parts[i].length
    }
    for (let i = length; i < out.length; i++) out[i] = 0xff
    return out
}

/** Checks a decoded body: an object whose keys are key names and whose values are strings. */
export function checkValues(parsed: unknown): { [key: string]: string } | null {
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return null
    const obj = parsed as { [key: string]: any }
    const keys = Object.keys(obj)
    const out: { [key: string]: string } = {}
    for (let i = 0; i < keys.length; i++) {
        if (!isPrefsKey(keys[i]) || typeof obj[keys[i]] !== "string") return null
        out[keys[i]] = obj[keys[i]]
    }
    return out
}

export interface Copy {
    seq: number
    values: { [key: string]: string }
}

/**
 * What reading a copy found: a whole record, or null with why. `refused` is "" for an
 * erased or torn copy, "mac" for a whole record whose seal does not verify (forged, or
 * sealed with a secret that is gone), "unsealed" for a whole record without a seal where
 * one is required.
 */
export interface CopyRead {
    copy: Copy | null
    refused: string
}

const TORN: CopyRead = { copy: null, refused: "" }

/** Reads one copy: sealed records need `se` (null: the unsealed format is read instead). */
export async function readCopy(
    crypto: Crypto,
    se: SecureElement | null,
    p: FlashPartition,
    offset: number,
    size: number
): Promise<CopyRead> {
    const header = await p.read(offset, HEADER_LENGTH)
    const version = header[4]
    if (header.slice(0, 4).toString() !== MAGIC) return TORN
    if (version !== FORMAT_VERSION && version !== SEALED_VERSION) return TORN
    const sealed = version === SEALED_VERSION
    if (sealed && se === null) return TORN
    const trailer = DIGEST_LENGTH + (sealed ? SEAL_LENGTH : 0)
    const length = readU32(header, 12)
    if (length < 2 || length > size - HEADER_LENGTH - trailer) return TORN
    const rest = await p.read(offset + HEADER_LENGTH, length + trailer)
    const body = rest.slice(0, length)
    if (!equalBytes(crypto.sha256([header, body]), rest.slice(length, length + DIGEST_LENGTH)))
        return TORN
    // Whole as written: from here on, a refusal is not a torn write but a record we did
    // not seal, and it is reported.
    if (se !== null && !sealed) return { copy: null, refused: "unsealed" }
    if (se !== null) {
        const mac = await sealMac(se, header, body)
        if (!equalBytes(mac, rest.slice(length + DIGEST_LENGTH)))
            return { copy: null, refused: "mac" }
    }
    let values: { [key: string]: string } | null = null
    try {
        values = checkValues(JSON.parse(body.toString("utf-8")))
    } catch (e) {
        return TORN
    }
    if (values === null) return TORN
    return { copy: { seq: readU32(header, 8), values: values }, refused: "" }
}
