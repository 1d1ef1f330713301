/**
 * Data-subject rights on the device (docs/privacy.md, "Rights"; GP-TM-14, GP-TM-10): every
 * request is authenticated first (the owner logged in on the local admin console, or an
 * operator key of the device profile signing a relayed request), then carried out by the
 * privacy manager, and audited either way. Verify first, then act: a refused request
 * changes nothing but the audit log. Replies say no more than "refused" or "invalid".
 */

import { Clock } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { equalBytes } from "../../boot/bytes"
import { MessageError } from "../messages"
import { Prefs } from "../prefs"
import { exportObject, infoObject } from "./export"
import { parseUintText, uintText } from "./held"
import { findCategory, findField } from "./inventory"
import { PrivacyManager } from "./manager"
import { AuditSink, EVENT_REQUEST, KEPT_PREFIX, PrivacyError } from "./state"
import {
    PrivacyRequest,
    RequestError,
    SignatureCheck,
    decodeConsoleLine,
    decodeOperatorBody,
    decodeSignedRequest,
    parseDecimal,
    signedMessage,
} from "./requests"
import { jsonText } from "./json"

/** The last operator request sequence number accepted; kept by an erasure (not personal). */
export const KEY_REQUEST_SEQ = KEPT_PREFIX + "privacy-seq"
/** Longest validity an operator request may claim, when the device knows the time. */
export const MAX_REQUEST_LIFETIME_S = 7 * 24 * 3600
/** The actor of requests typed by the logged-in owner. */
export const CONSOLE_OWNER = "console:owner"

export interface RightsDeps {
    manager: PrivacyManager
    prefs: Prefs
    crypto: Crypto
    clock: Clock
    audit: AuditSink
    deviceId: string
    /**
     * True while the owner is logged in on the local admin console: the session check of
     * the admin console (src/admin/console.ts), which owns login, lockout and recovery.
     */
    consoleOwner: () => boolean
    /** Operator public keys (65-byte P-256) allowed to relay requests (device profile). */
    operatorKeys: Buffer[]
    /** Verifies an operator's signature (secureElementCheck on every board). */
    verify: SignatureCheck
}

export interface PrivacyReply {
    /** The request id ("" when it could not be read). */
    id: string
    right: string
    ok: boolean
    /** "" when ok; "refused" (not authenticated, not authorised, stale or replayed),
     *  "invalid" (not a request), "failed" (a valid request the device cannot do now). */
    error: string
    /** export: the document; info: the inventory; null otherwise. */
    document: { [key: string]: any } | null
}

function reply(id: string, right: string, error: string): PrivacyReply {
    return { id: id, right: right, ok: error === "", error: error, document: null }
}

async function refuse(deps: RightsDeps, actor: string, id: string, check: string) {
    await deps.audit(EVENT_REQUEST, actor, "refused", "check=" + check)
    return reply(id, "", check === "format" ? "invalid" : "refused")
}

/** A short, stable name of an operator key: "operator:" and 8 hex digits of its SHA-256. */
export function operatorActor(crypto: Crypto, key: Buffer): string {
    return "operator:" + crypto.sha256([key]).slice(0, 4).toString("hex")
}

/**
 * Handles one line the console passes on ("privacy ..."): refused unless the owner is
 * logged in now; an erasure must repeat the device id, as the factory reset does.
 */
export async function handleConsoleLine(deps: RightsDeps, line: string): Promise<PrivacyReply> {
    if (!deps.consoleOwner()) return await refuse(deps, "console", "console", "session")
    let request: PrivacyRequest
    try {
        request = decodeConsoleLine(line)
    } catch (e) {
        if (!(e instanceof RequestError)) throw e
        await deps.audit(EVENT_REQUEST, CONSOLE_OWNER, "failure", "check=" + e.check)
        return reply("console", "", "invalid")
    }
    if (request.right === "erase" && request.confirm !== deps.deviceId) {
        await deps.audit(EVENT_REQUEST, CONSOLE_OWNER, "refused", "right=erase check=confirm")
        return reply("console", "erase", "invalid")
    }
    return await perform(deps, request, CONSOLE_OWNER)
}

function isListed(keys: Buffer[], key: Buffer): boolean {
    let found = false
    for (let i = 0; i < keys.length; i++) if (equalBytes(keys[i], key)) found = true
    return found
}

/**
 * Handles an operator-signed request from bulwark/<deviceId>/privacy/request. In order:
 * the envelope, a listed operator key, its signature over the exact body bytes, then the
 * body: this device, not expired and not valid for longer than MAX_REQUEST_LIFETIME_S when
 * the wall time is known, and a sequence number above the last accepted one, which is
 * stored before anything is done.
 */
export async function handleOperatorRequest(
    deps: RightsDeps,
    payload: Buffer
): Promise<PrivacyReply> {
    let signed
    try {
        signed = decodeSignedRequest(payload)
    } catch (e) {
        if (!(e instanceof RequestError)) throw e
        return await refuse(deps, "operator", "", "format")
    }
    if (!isListed(deps.operatorKeys, signed.operatorKey))
        return await refuse(deps, "operator", "", "operator")
    const actor = operatorActor(deps.crypto, signed.operatorKey)
    const genuine = await deps.verify(
        signed.operatorKey,
        signedMessage(signed.body),
        signed.signature
    )
    if (!genuine) return await refuse(deps, actor, "", "signature")

    let body
    try {
        body = decodeOperatorBody(signed.body)
    } catch (e) {
        if (!(e instanceof RequestError)) throw e
        return await refuse(deps, actor, "", "format")
    }
    const id = body.request.id
    if (body.deviceId !== deps.deviceId) return await refuse(deps, actor, id, "device")
    const wall = deps.clock.wallTime()
    if (wall !== null && wall > body.expires) return await refuse(deps, actor, id, "expired")
    if (wall !== null && body.expires - wall > MAX_REQUEST_LIFETIME_S)
        return await refuse(deps, actor, id, "lifetime")
    const last = parseUintText(deps.prefs.get(KEY_REQUEST_SEQ))
    if (body.seq <= last) return await refuse(deps, actor, id, "replayed")

    // Accepted: the sequence number is spent before acting, so a cut never allows a replay.
    await deps.manager.setDeviceState(KEY_REQUEST_SEQ, uintText(body.seq))
    return await perform(deps, body.request, actor)
}

/** The value of a rectification in the field's own kind (console lines give text). */
function typedValue(deps: RightsDeps, request: PrivacyRequest): number | string | null {
    const c = findCategory(deps.manager.categories(), request.category)
    const spec = c === null ? null : findField(c, request.field)
    if (spec === null || spec.kind === "text") return request.value
    if (typeof request.value === "string") {
        const n = parseDecimal(request.value)
        return n === n ? n : null
    }
    return request.value
}

/** Carries out an authenticated request for `actor`; the manager audits what it changes. */
export async function perform(
    deps: RightsDeps,
    request: PrivacyRequest,
    actor: string
): Promise<PrivacyReply> {
    const m = deps.manager
    const out = reply(request.id, request.right, "")
    try {
        if (request.right === "info") {
            out.document = infoObject(m)
            await deps.audit(EVENT_REQUEST, actor, "success", "right=info")
        } else if (request.right === "export") {
            out.document = exportObject(m, deps.deviceId, deps.clock.wallTime())
            await deps.audit(EVENT_REQUEST, actor, "success", "right=export")
        } else if (request.right === "erase") await m.erase(actor)
        else if (request.right === "consent")
            await m.setConsent(request.category, request.on, actor)
        else if (request.right === "restrict") await m.setRestricted(request.on, actor)
        else if (request.right === "rectify")
            await m.rectify(request.category, request.field, typedValue(deps, request), actor)
        else return reply(request.id, request.right, "invalid")
    } catch (e) {
        if (!(e instanceof PrivacyError)) throw e
        const detail = "right=" + request.right + " check=" + e.check
        await deps.audit(EVENT_REQUEST, actor, "failure", detail)
        return reply(request.id, request.right, "failed")
    }
    return out
}

/** The reply published on bulwark/<deviceId>/privacy/reply. */
export function replyPayload(r: PrivacyReply): Buffer {
    const body = { v: 1, id: r.id, right: r.right, ok: r.ok, error: r.error, document: r.document }
    return Buffer.from(jsonText(body))
}

/** Console lines for a reply: "ok", "error: <error>", or the document between markers. */
export function replyLines(r: PrivacyReply, width: number): string[] {
    if (!r.ok) return ["error: " + r.error]
    if (r.document === null) return ["ok"]
    const text = jsonText(r.document)
    const out: string[] = ["privacy-begin"]
    for (let i = 0; i < text.length; i += width) out.push("privacy " + text.slice(i, i + width))
    out.push("privacy-end")
    return out
}

/** Characters of a document per console line ("privacy " and this many). */
export const CONSOLE_LINE_WIDTH = 96

/**
 * The "privacy" command for the admin console (the ConsoleCommand of src/admin/console.ts):
 * the console offers it to the logged-in owner only, and `deps.consoleOwner` checks the
 * session again (wire it to AdminConsole.ownerLoggedIn).
 */
export function privacyConsoleCommand(deps: RightsDeps): {
    word: string
    handle: (line: string) => Promise<string[]>
} {
    return {
        word: "privacy",
        handle: async function (line: string): Promise<string[]> {
            return replyLines(await handleConsoleLine(deps, line), CONSOLE_LINE_WIDTH)
        },
    }
}

/** Sub-topics of bulwark/<deviceId>/privacy/: requests in, replies out. */
export const PRIVACY_CHANNEL = "privacy"
export const REPLY_SUFFIX = "privacy/reply"

/**
 * The decoder for DeviceSession.route(PRIVACY_CHANNEL, ...): only
 * bulwark/<deviceId>/privacy/request is taken (the device's own replies come back through
 * its subscription and are refused here, MessageError "topic", which the session counts as
 * rejected); the payload is checked by handleOperatorRequest.
 */
export function decodePrivacyTopic(payload: Buffer, path: string[]): Buffer {
    if (path.length !== 1 || path[0] !== "request") throw new MessageError("topic", "privacy path")
    return payload
}

/**
 * The handler for that route: runs the request and publishes the reply on
 * bulwark/<deviceId>/privacy/reply with `publish` (DeviceSession.publish without queueing:
 * a reply that cannot go now is not kept, the backend asks again).
 */
export function privacyRequestHandler(
    deps: RightsDeps,
    publish: (suffix: string, payload: Buffer) => Promise<void>
): (payload: Buffer, path: string[]) => Promise<void> {
    return async function (payload: Buffer, path: string[]): Promise<void> {
        const reply = await handleOperatorRequest(deps, payload)
        await publish(REPLY_SUFFIX, replyPayload(reply))
    }
}
