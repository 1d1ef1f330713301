/**
 * Data-subject requests as they reach the device (docs/privacy.md, "Requests"; GP-TM-14,
 * GP-TM-54): a console line typed by the logged-in owner, or an operator-signed MQTT
 * message relaying the owner's request from the backend. Decoders check every size and
 * field before use and fail closed with a RequestError naming the check; none keeps state.
 */

import { isHexText } from "../../boot/bytes"
import { isSafeName } from "../../boot/profile"
import { Crypto } from "../../hal/crypto"
import { SecureElement } from "../../hal/secure-element"
import { MessageError, decodeJsonObject } from "../messages"
import { isCategoryId } from "./inventory"
import { parseUintText } from "./held"
import { CheckError } from "../../hal/errors"

export const RIGHTS = ["info", "export", "erase", "rectify", "restrict", "consent"]

/** Prefix of the message an operator signs (ECDSA P-256 over SHA-256(label || body)). */
export const REQUEST_LABEL = "bulwark-privacy-request-v1"
export const MAX_REQUEST_BYTES = 2048
export const MAX_CONSOLE_LINE = 256
const PUBLIC_KEY_LENGTH = 65
const SIGNATURE_LENGTH = 64
const MAX_TEXT_VALUE = 128

/**
 * Checks: "size", "encoding", "json", "depth", "field", "version", "right" (from the JSON
 * decoder and the request fields); "command" (not a privacy console command).
 */
export class RequestError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "privacy request: " + check + ": " + message)
        this.name = "RequestError"
    }
}

/** One request, whatever its source. */
export interface PrivacyRequest {
    /** Chosen by the sender and echoed in the reply; "console" for console lines. */
    id: string
    /** One of RIGHTS. */
    right: string
    /** consent, rectify: the category; "" otherwise. */
    category: string
    /** rectify: the field; "" otherwise. */
    field: string
    /** rectify: the new value (a console line gives text, converted by the field's kind). */
    value: number | string | null
    /** consent: grant (true) or withdraw; restrict: on (true) or off. */
    on: boolean
    /** erase from the console: the device id typed to confirm; "" otherwise. */
    confirm: string
}

/** An operator-signed request before verification. */
export interface SignedRequest {
    /** The exact bytes the signature covers, after REQUEST_LABEL. */
    body: Buffer
    operatorKey: Buffer
    signature: Buffer
}

/** The body of a signed request once decoded. */
export interface OperatorRequest {
    deviceId: string
    /** Above the last accepted one (kept across reboots): replays fail. */
    seq: number
    /** Wall-clock seconds after which the device refuses it. */
    expires: number
    request: PrivacyRequest
}

/** Verifies `signature` of `message` with `publicKey`: the board's verification hook. */
export type SignatureCheck = (
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer
) => Promise<boolean>

/** A SignatureCheck by the secure element (the DeviceScript boards have no ECDSA of their own). */
export function secureElementCheck(crypto: Crypto, se: SecureElement): SignatureCheck {
    return async function (publicKey: Buffer, message: Buffer, signature: Buffer) {
        return await se.verifyDigest(publicKey, crypto.sha256([message]), signature)
    }
}

/** The message an operator signs for `body`. */
export function signedMessage(body: Buffer): Buffer {
    const label = Buffer.from(REQUEST_LABEL)
    const out = Buffer.alloc(label.length + body.length)
    for (let i = 0; i < label.length; i++) out[i] = label[i]
    for (let i = 0; i < body.length; i++) out[label.length + i] = body[i]
    return out
}

function jsonObject(payload: Buffer, maxBytes: number): { [key: string]: any } {
    try {
        return decodeJsonObject(payload, maxBytes)
    } catch (e) {
        if (e instanceof MessageError) throw new RequestError(e.check, "not a request")
        throw e
    }
}

function onlyKeys(obj: { [key: string]: any }, allowed: string[], what: string): void {
    const keys = Object.keys(obj)
    for (let i = 0; i < keys.length; i++)
        if (allowed.indexOf(keys[i]) < 0) throw new RequestError("field", what + ": unknown field")
}

/**
 * Decodes the MQTT envelope `{"v":1,"body":"<request JSON>","key":"<hex>","sig":"<hex>"}`
 * (key: 65-byte uncompressed P-256, sig: 64-byte r||s). Nothing of the body is read yet.
 */
export function decodeSignedRequest(payload: Buffer): SignedRequest {
    const obj = jsonObject(payload, MAX_REQUEST_BYTES)
    onlyKeys(obj, ["v", "body", "key", "sig"], "envelope")
    if (obj["v"] !== 1) throw new RequestError("version", "envelope")
    const body = obj["body"]
    if (typeof body !== "string" || body.length < 2) throw new RequestError("field", "body")
    if (!isHexText(obj["key"], PUBLIC_KEY_LENGTH)) throw new RequestError("field", "key")
    if (!isHexText(obj["sig"], SIGNATURE_LENGTH)) throw new RequestError("field", "sig")
    return {
        body: Buffer.from(body),
        operatorKey: Buffer.from(obj["key"], "hex"),
        signature: Buffer.from(obj["sig"], "hex"),
    }
}

function emptyRequest(id: string, right: string): PrivacyRequest {
    return { id: id, right: right, category: "", field: "", value: null, on: false, confirm: "" }
}

function category(value: unknown): string {
    if (!isCategoryId(value)) throw new RequestError("field", "category")
    return value as string
}

/** Field names: 1 to 24 ASCII letters and digits. */
function fieldName(value: unknown): string {
    if (typeof value !== "string" || value.length < 1 || value.length > 24)
        throw new RequestError("field", "field")
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
        if (!ok) throw new RequestError("field", "field")
    }
    return value
}

function flag(value: unknown, what: string): boolean {
    if (typeof value !== "boolean") throw new RequestError("field", what)
    return value
}

function fieldValue(value: unknown): number | string {
    if (typeof value === "string" && value.length <= MAX_TEXT_VALUE) return value
    if (typeof value === "number" && value === value && value !== Infinity && value !== -Infinity)
        return value
    throw new RequestError("field", "value")
}

/** The arguments of `right`, checked: exactly the keys the right takes, each well typed. */
function requestWithArgs(id: string, right: string, args: { [key: string]: any }) {
    const r = emptyRequest(id, right)
    if (right === "consent") {
        onlyKeys(args, ["category", "grant"], "args")
        r.category = category(args["category"])
        r.on = flag(args["grant"], "grant")
    } else if (right === "restrict") {
        onlyKeys(args, ["on"], "args")
        r.on = flag(args["on"], "on")
    } else if (right === "rectify") {
        onlyKeys(args, ["category", "field", "value"], "args")
        r.category = category(args["category"])
        r.field = fieldName(args["field"])
        r.value = fieldValue(args["value"])
    } else onlyKeys(args, [], "args")
    return r
}

/**
 * Decodes a verified body: `{"v":1,"device":"<id>","id":"<request id>","seq":"<n>",
 * "expires":"<seconds>","right":"<right>","args":{...}}`, seq and expires as decimal
 * strings (exact on every target). Args: consent {category, grant}, restrict {on},
 * rectify {category, field, value}; info, export and erase take none.
 */
export function decodeOperatorBody(body: Buffer): OperatorRequest {
    const obj = jsonObject(body, MAX_REQUEST_BYTES)
    onlyKeys(obj, ["v", "device", "id", "seq", "expires", "right", "args"], "body")
    if (obj["v"] !== 1) throw new RequestError("version", "body")
    if (!isSafeName(obj["device"])) throw new RequestError("field", "device")
    if (!isSafeName(obj["id"])) throw new RequestError("field", "id")
    const seq = parseUintText(obj["seq"])
    if (seq < 1) throw new RequestError("field", "seq")
    const expires = parseUintText(obj["expires"])
    if (expires < 1) throw new RequestError("field", "expires")
    const right = obj["right"]
    if (typeof right !== "string" || RIGHTS.indexOf(right) < 0)
        throw new RequestError("right", "unknown")
    let args = obj["args"]
    if (args === undefined) args = {}
    if (args === null || typeof args !== "object" || Array.isArray(args))
        throw new RequestError("field", "args")
    return {
        deviceId: obj["device"],
        seq: seq,
        expires: expires,
        request: requestWithArgs(obj["id"], right, args),
    }
}

/** Splits a line at runs of spaces, at most `max` words (the last keeps the rest). */
function words(line: string, max: number): string[] {
    const out: string[] = []
    let i = 0
    while (i < line.length && out.length < max) {
        while (i < line.length && line.charAt(i) === " ") i++
        if (i >= line.length) break
        let end = i
        if (out.length === max - 1) end = line.length
        else while (end < line.length && line.charAt(end) !== " ") end++
        out.push(line.slice(i, end))
        i = end
    }
    return out
}

function onOff(word: string, on: string, off: string): boolean {
    if (word === on) return true
    if (word === off) return false
    throw new RequestError("command", "expected " + on + " or " + off)
}

/**
 * Decodes a console line: "privacy info", "privacy export", "privacy erase <deviceId>",
 * "privacy consent <category> grant|withdraw", "privacy restrict on|off",
 * "privacy set <category> <field> <value...>". RequestError "command" otherwise.
 */
export function decodeConsoleLine(line: string): PrivacyRequest {
    if (typeof line !== "string" || line.length > MAX_CONSOLE_LINE)
        throw new RequestError("size", "line")
    for (let i = 0; i < line.length; i++) {
        const c = line.charCodeAt(i)
        if (c < 0x20 || c === 0x7f) throw new RequestError("encoding", "control character")
    }
    const w = words(line.trim(), 5)
    if (w.length < 2 || w[0] !== "privacy") throw new RequestError("command", "not privacy")
    const right = w[1]
    const n = w.length
    if ((right === "info" || right === "export") && n === 2) return emptyRequest("console", right)
    if (right === "erase" && n === 3) {
        const r = emptyRequest("console", right)
        r.confirm = w[2]
        return r
    }
    if (right === "consent" && n === 4) {
        const r = emptyRequest("console", right)
        r.category = category(w[2])
        r.on = onOff(w[3], "grant", "withdraw")
        return r
    }
    if (right === "restrict" && n === 3) {
        const r = emptyRequest("console", right)
        r.on = onOff(w[2], "on", "off")
        return r
    }
    if (right === "set" && n === 5) {
        const r = emptyRequest("console", "rectify")
        r.category = category(w[2])
        r.field = fieldName(w[3])
        r.value = fieldValue(w[4])
        return r
    }
    throw new RequestError("command", "unknown privacy command")
}

/**
 * A decimal number typed on the console: optional '-', digits, optional '.' and digits,
 * at most 15 digits in all. NaN otherwise.
 */
export function parseDecimal(text: string): number {
    let i = 0
    let negative = false
    if (text.charAt(0) === "-") {
        negative = true
        i = 1
    }
    let whole = 0
    let scale = 1
    let digits = 0
    let fraction = false
    while (i < text.length) {
        const c = text.charCodeAt(i)
        i++
        if (c === 0x2e && !fraction) {
            fraction = true
            continue
        }
        if (c < 0x30 || c > 0x39) return NaN
        whole = whole * 10 + (c - 0x30)
        if (fraction) scale = scale * 10
        digits++
    }
    if (digits < 1 || digits > 15 || text.charAt(text.length - 1) === ".") return NaN
    const value = whole / scale
    return negative ? -value : value
}
