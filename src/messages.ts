/**
 * Decoders for what reaches the device from the network (GP-TM-54): the inbound topic, a
 * bounded JSON object, and the command envelope. Each checks sizes and every field before
 * anything uses the value, and fails with a MessageError naming the check; none keeps state.
 * Portable: DeviceScript subset (DESIGN.md section 4).
 */

import { isSafeName } from "../boot/profile"
import { CheckError } from "../hal/errors"

export const TOPIC_ROOT = "bulwark"
/** Levels below bulwark/<deviceId>/ an inbound topic may have. */
export const MAX_TOPIC_LEVELS = 8
export const MAX_TOPIC_LENGTH = 256
/** Nesting depth of inbound JSON: DeviceScript's call depth limit is about 100. */
export const MAX_JSON_DEPTH = 8

/** Checks: "topic", "size", "encoding", "json", "depth", "field", "version". */
export class MessageError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "inbound message: " + check + ": " + message)
        this.name = "MessageError"
    }
}

export interface InboundTopic {
    /** First level under bulwark/<deviceId>/, e.g. "cmd". */
    channel: string
    /** The levels after the channel, each a safe name. */
    path: string[]
}

/**
 * Splits an inbound topic, which must lie under bulwark/<deviceId>/ and consist of safe
 * names only (no wildcards, no empty level, no '$'), at most MAX_TOPIC_LEVELS deep.
 */
export function parseInboundTopic(deviceId: string, topic: unknown): InboundTopic {
    if (typeof topic !== "string" || topic.length < 1 || topic.length > MAX_TOPIC_LENGTH)
        throw new MessageError("topic", "length")
    const levels = topic.split("/")
    if (levels.length < 3 || levels[0] !== TOPIC_ROOT || levels[1] !== deviceId)
        throw new MessageError("topic", "not this device's subtree")
    if (levels.length - 2 > MAX_TOPIC_LEVELS) throw new MessageError("topic", "too deep")
    for (let i = 2; i < levels.length; i++)
        if (!isSafeName(levels[i])) throw new MessageError("topic", "level " + i + " is not a name")
    return { channel: levels[2], path: levels.slice(3) }
}

/** True when every byte sequence of `buf` is well-formed UTF-8 (RFC 3629, no overlongs). */
export function isUtf8(buf: Buffer): boolean {
    let i = 0
    while (i < buf.length) {
        const b = buf[i]
        let extra = 0
        let min = 0
        if (b < 0x80) {
            i++
            continue
        } else if (b >= 0xc2 && b <= 0xdf) {
            extra = 1
            min = 0x80
        } else if (b >= 0xe0 && b <= 0xef) {
            extra = 2
            min = 0x800
        } else if (b >= 0xf0 && b <= 0xf4) {
            extra = 3
            min = 0x10000
        } else return false
        if (i + extra > buf.length - 1) return false
        let cp = b & (0x3f >> extra)
        for (let k = 1; k <= extra; k++) {
            const c = buf[i + k]
            if ((c & 0xc0) !== 0x80) return false
            cp = cp * 64 + (c & 0x3f)
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false
        i += extra + 1
    }
    return true
}

/**
 * Nesting depth of a JSON text, counting brackets outside strings. Run before JSON.parse so
 * a deeply nested payload never reaches the (recursive) parser.
 */
export function jsonDepth(text: string): number {
    let depth = 0
    let max = 0
    let inString = false
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (inString) {
            if (c === 0x5c) i++
            else if (c === 0x22) inString = false
            continue
        }
        if (c === 0x22) inString = true
        else if (c === 0x7b || c === 0x5b) {
            depth++
            if (depth > max) max = depth
        } else if (c === 0x7d || c === 0x5d) depth--
    }
    return max
}

/**
 * Decodes a payload that must be one JSON object of at most `maxBytes` bytes of UTF-8 and
 * at most MAX_JSON_DEPTH deep.
 */
export function decodeJsonObject(payload: Buffer, maxBytes: number): { [key: string]: any } {
    if (payload.length < 2 || payload.length > maxBytes) throw new MessageError("size", "length")
    if (!isUtf8(payload)) throw new MessageError("encoding", "not UTF-8")
    const text = payload.toString("utf-8")
    if (jsonDepth(text) > MAX_JSON_DEPTH) throw new MessageError("depth", "nested too deep")
    let value: any
    try {
        value = JSON.parse(text)
    } catch (e) {
        throw new MessageError("json", "not JSON")
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new MessageError("json", "not an object")
    return value
}

function checkOnlyKeys(obj: { [key: string]: any }, allowed: string[]): void {
    const keys = Object.keys(obj)
    for (let i = 0; i < keys.length; i++)
        if (allowed.indexOf(keys[i]) < 0) throw new MessageError("field", "unknown field")
}

/** A remote command: what to do, with its arguments, and an id the reply repeats. */
export interface CommandEnvelope {
    /** 1 to 64 of a-z, 0-9, '-', '.' chosen by the sender; echoed in the reply. */
    id: string
    /** The command name, a safe name. */
    name: string
    /** The arguments, a JSON object the command's own decoder checks. */
    args: { [key: string]: any }
}

/**
 * Decodes `{"v":1,"id":"...","name":"...","args":{...}}` (args optional). Unknown fields,
 * another version or a badly typed field is a MessageError.
 */
export function decodeCommand(payload: Buffer, maxBytes: number): CommandEnvelope {
    const obj = decodeJsonObject(payload, maxBytes)
    checkOnlyKeys(obj, ["v", "id", "name", "args"])
    if (obj["v"] !== 1) throw new MessageError("version", "unsupported")
    if (!isSafeName(obj["id"])) throw new MessageError("field", "id")
    if (!isSafeName(obj["name"])) throw new MessageError("field", "name")
    let args = obj["args"]
    if (args === undefined) args = {}
    if (args === null || typeof args !== "object" || Array.isArray(args))
        throw new MessageError("field", "args")
    return { id: obj["id"], name: obj["name"], args: args }
}
