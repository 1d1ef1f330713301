/**
 * Remote attestation of the measured boot (docs/attestation.md; GP-TM-56, GP-TM-41): an
 * operator-signed request with a fresh nonce, and the device's report of what it booted
 * (slot, version, security counter, image digest, key slot, trial), its OTP state, its
 * self-test and its time, signed by the identity key in the secure element. Both formats
 * are byte-exact; every length is checked before use and a bad one is an AttestError.
 */

import { concatBytes, readU32, writeU32 } from "../boot/bytes"
import { MeasuredBoot } from "../boot/stub"
import { Clock } from "../hal/clock"
import { Crypto } from "../hal/crypto"
import { CheckError, SecureElementError } from "../hal/errors"
import { Otp, OTP_KEY_SLOT_COUNT } from "../hal/otp"
import { SE_SLOT_IDENTITY, SecureElement } from "../hal/secure-element"
import { checkOperatorRequest } from "./operator-request"
import { SelfTestResult } from "./selftest"

export const REQUEST_MAGIC = "BWAQ"
export const REPORT_MAGIC = "BWAT"
export const ATTEST_VERSION = 1
/** Prefix of the message an operator signs to ask for a report. */
export const ATTEST_REQUEST_LABEL = "bulwark-attest-request-v1"
/** Prefix of the message the device's report signature covers. */
export const ATTEST_REPORT_LABEL = "bulwark-attest-report-v1"
export const NONCE_LENGTH = 16
export const PUBLIC_KEY_LENGTH = 65
export const SIGNATURE_LENGTH = 64
export const DIGEST_LENGTH = 32
const MAX_DEVICE_ID = 64
const MAX_VERSION = 32
const MAX_FAILED = 255
const MAX_KEY_SLOTS = 8

/** Key-slot states in a report. */
export const KEY_SLOT_BLANK = 0
export const KEY_SLOT_ACTIVE = 1
export const KEY_SLOT_REVOKED = 2

/**
 * Checks: "format" (not a request or report, a length out of bounds), "device" (another
 * device), "operator" (key not authorised), "signature", "expired", "replayed",
 * "identity" (the device cannot sign), and on the verifier's side "nonce", "digest",
 * "counter". Replies that leave the device never name the check (GP-TM-53).
 */
export class AttestError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "AttestError"
    }
}

export interface AttestRequest {
    deviceId: string
    nonce: Buffer
    /** Wall-clock seconds after which the device refuses it; 0 for none. */
    expires: number
    operatorKey: Buffer
    signature: Buffer
    /** The bytes the signature covers (without the label). */
    signedPart: Buffer
}

export interface AttestReport {
    deviceId: string
    nonce: Buffer
    slot: string
    version: string
    securityCounter: number
    /** SHA-256 over the image header and payload, as the boot stub measured it. */
    digest: Buffer
    keySlot: number
    trial: boolean
    attempt: number
    /** The OTP anti-rollback counter; 0 on a board without OTP. */
    otpCounter: number
    /** One state per OTP key slot (KEY_SLOT_*); empty on a board without OTP. */
    keySlots: number[]
    selfTestOk: boolean
    /** Names of the failed self-tests, comma-separated; "" when all passed. */
    selfTestFailed: string
    /** Wall-clock seconds when the report was made; 0 when the device does not know. */
    time: number
}

function fail(check: string, message: string): AttestError {
    return new AttestError(check, message)
}

function asciiField(value: string, max: number, what: string): Buffer {
    const bytes = Buffer.from(value)
    if (bytes.length !== value.length || bytes.length > max) throw fail("format", what)
    return bytes
}

function header(magic: string): Buffer {
    const head = Buffer.alloc(5)
    const m = Buffer.from(magic)
    for (let i = 0; i < 4; i++) head[i] = m[i]
    head[4] = ATTEST_VERSION
    return head
}

function byteOf(value: number): Buffer {
    const b = Buffer.alloc(1)
    b[0] = value
    return b
}

function u32Of(value: number): Buffer {
    const b = Buffer.alloc(4)
    writeU32(b, 0, value)
    return b
}

function deviceIdField(deviceId: string): Buffer {
    const id = asciiField(deviceId, MAX_DEVICE_ID, "device id")
    if (id.length < 1) throw fail("format", "device id")
    return concatBytes([byteOf(id.length), id])
}

/** Reads the magic and version; returns where the body starts. */
function checkHeader(bytes: Buffer, magic: string): number {
    if (bytes.length < 6 || bytes.slice(0, 4).toString() !== magic) throw fail("format", "magic")
    if (bytes[4] !== ATTEST_VERSION) throw fail("format", "version")
    return 5
}

/** The unsigned part of a request, for the operator's tool to sign. */
export function encodeRequestBody(
    deviceId: string,
    nonce: Buffer,
    expires: number,
    operatorKey: Buffer
): Buffer {
    if (nonce.length !== NONCE_LENGTH) throw fail("format", "nonce")
    if (operatorKey.length !== PUBLIC_KEY_LENGTH) throw fail("format", "operator key")
    return concatBytes([header(REQUEST_MAGIC), deviceIdField(deviceId), nonce, u32Of(expires),
        operatorKey])
}

/** The message an operator signs (ECDSA P-256 over its SHA-256). */
export function requestMessage(body: Buffer): Buffer {
    return concatBytes([Buffer.from(ATTEST_REQUEST_LABEL), body])
}

/** Parses a request; its length must be exact. */
export function decodeRequest(bytes: Buffer): AttestRequest {
    let p = checkHeader(bytes, REQUEST_MAGIC)
    const idLen = bytes[p]
    const bodyLen = p + 1 + idLen + NONCE_LENGTH + 4 + PUBLIC_KEY_LENGTH
    if (idLen < 1 || idLen > MAX_DEVICE_ID || bytes.length !== bodyLen + SIGNATURE_LENGTH)
        throw fail("format", "length")
    p += 1
    const deviceId = bytes.slice(p, p + idLen).toString()
    p += idLen
    const nonce = bytes.slice(p, p + NONCE_LENGTH)
    p += NONCE_LENGTH
    const expires = readU32(bytes, p)
    p += 4
    return {
        deviceId: deviceId,
        nonce: nonce,
        expires: expires,
        operatorKey: bytes.slice(p, p + PUBLIC_KEY_LENGTH),
        signature: bytes.slice(bodyLen),
        signedPart: bytes.slice(0, bodyLen),
    }
}

/** What the device needs to answer requests. */
export interface AttestContext {
    secureElement: SecureElement
    crypto: Crypto
    clock: Clock
    otp: Otp | null
    deviceId: string
    /** Operator public keys (65-byte P-256) allowed to ask (profile security.operatorKeys). */
    operatorKeys: Buffer[]
    /** Nonces of recent requests, kept in RAM against replays within this boot. */
    recentNonces: string[]
    measured: MeasuredBoot
    selfTest: SelfTestResult
}

/**
 * Verifies a request as an audit export request is verified (src/audit/export.ts): this
 * device, a listed operator key, a valid signature checked by the secure element, not
 * expired when the time is known, nonce not seen since boot. Throws AttestError.
 */
export async function authorizeRequest(ctx: AttestContext, request: AttestRequest) {
    const refused = await checkOperatorRequest(ctx, {
        deviceId: request.deviceId,
        operatorKey: request.operatorKey,
        digest: ctx.crypto.sha256([requestMessage(request.signedPart)]),
        signature: request.signature,
        expires: request.expires,
        nonce: request.nonce,
    })
    if (refused !== null) throw fail(refused.check, refused.message)
}

/** The signed part of a report (docs/attestation.md, "Report"). */
export function encodeReportBody(r: AttestReport): Buffer {
    if (r.nonce.length !== NONCE_LENGTH) throw fail("format", "nonce")
    if (r.digest.length !== DIGEST_LENGTH) throw fail("format", "digest")
    if (r.slot !== "a" && r.slot !== "b") throw fail("format", "slot")
    if (r.keySlots.length > MAX_KEY_SLOTS) throw fail("format", "key slots")
    const version = asciiField(r.version, MAX_VERSION, "version")
    const failed = asciiField(r.selfTestFailed, MAX_FAILED, "self-test")
    const slots = Buffer.alloc(1 + r.keySlots.length)
    slots[0] = r.keySlots.length
    for (let i = 0; i < r.keySlots.length; i++) slots[1 + i] = r.keySlots[i]
    const boot = Buffer.alloc(3)
    boot[0] = r.keySlot
    boot[1] = r.trial ? 1 : 0
    boot[2] = r.attempt > 255 ? 255 : r.attempt
    return concatBytes([
        header(REPORT_MAGIC), deviceIdField(r.deviceId), r.nonce,
        byteOf(r.slot === "a" ? 0 : 1), byteOf(version.length), version,
        u32Of(r.securityCounter), r.digest, boot, u32Of(r.otpCounter), slots,
        byteOf(r.selfTestOk ? 1 : 0), byteOf(failed.length), failed, u32Of(r.time),
    ])
}

/** The message the report signature covers (ECDSA P-256 over its SHA-256). */
export function reportMessage(body: Buffer): Buffer {
    return concatBytes([Buffer.from(ATTEST_REPORT_LABEL), body])
}

/** Reads `n` bytes at the cursor or fails "format" naming the field. */
class Cursor {
    p: number
    constructor(private readonly bytes: Buffer, start: number, private readonly end: number) {
        this.p = start
    }
    take(n: number, what: string): Buffer {
        if (this.p + n > this.end) throw fail("format", what)
        const out = this.bytes.slice(this.p, this.p + n)
        this.p += n
        return out
    }
    byte(what: string): number {
        return this.take(1, what)[0]
    }
    u32(what: string): number {
        return readU32(this.take(4, what), 0)
    }
}

/** Parses a signed report; returns the fields, the signed body and the signature. */
export function decodeReport(bytes: Buffer): { report: AttestReport; body: Buffer; signature: Buffer } {
    const start = checkHeader(bytes, REPORT_MAGIC)
    if (bytes.length < start + SIGNATURE_LENGTH) throw fail("format", "length")
    const end = bytes.length - SIGNATURE_LENGTH
    const c = new Cursor(bytes, start, end)
    const idLen = c.byte("device id")
    if (idLen < 1 || idLen > MAX_DEVICE_ID) throw fail("format", "device id")
    const deviceId = c.take(idLen, "device id").toString()
    const nonce = c.take(NONCE_LENGTH, "nonce")
    const slotByte = c.byte("slot")
    if (slotByte > 1) throw fail("format", "slot")
    const versionLen = c.byte("version")
    if (versionLen > MAX_VERSION) throw fail("format", "version")
    const version = c.take(versionLen, "version").toString()
    const securityCounter = c.u32("security counter")
    const digest = c.take(DIGEST_LENGTH, "digest")
    const keySlot = c.byte("key slot")
    const trial = c.byte("trial")
    if (trial > 1) throw fail("format", "trial")
    const attempt = c.byte("attempt")
    const otpCounter = c.u32("otp counter")
    const slotCount = c.byte("key slots")
    if (slotCount > MAX_KEY_SLOTS) throw fail("format", "key slots")
    const keySlots: number[] = []
    for (let i = 0; i < slotCount; i++) {
        const state = c.byte("key slots")
        if (state > KEY_SLOT_REVOKED) throw fail("format", "key slot state")
        keySlots.push(state)
    }
    const ok = c.byte("self-test")
    if (ok > 1) throw fail("format", "self-test")
    const failed = c.take(c.byte("self-test"), "self-test").toString()
    const time = c.u32("time")
    if (c.p !== end) throw fail("format", "length")
    const report: AttestReport = {
        deviceId: deviceId, nonce: nonce, slot: slotByte === 0 ? "a" : "b", version: version,
        securityCounter: securityCounter, digest: digest, keySlot: keySlot, trial: trial === 1,
        attempt: attempt, otpCounter: otpCounter, keySlots: keySlots, selfTestOk: ok === 1,
        selfTestFailed: failed, time: time,
    }
    return { report: report, body: bytes.slice(0, end), signature: bytes.slice(end) }
}

/** The OTP counter and key-slot states, or zero and none on a board without OTP. */
async function otpState(otp: Otp | null): Promise<{ counter: number; slots: number[] }> {
    if (otp === null) return { counter: 0, slots: [] }
    const slots: number[] = []
    for (let i = 0; i < OTP_KEY_SLOT_COUNT; i++) {
        const s = await otp.readKeySlot(i)
        let state = KEY_SLOT_ACTIVE
        if (s.revoked) state = KEY_SLOT_REVOKED
        else if (s.digest === null) state = KEY_SLOT_BLANK
        slots.push(state)
    }
    return { counter: await otp.readCounter(), slots: slots }
}

function hexDigest(hex: string): Buffer {
    const digest = Buffer.from(hex, "hex")
    if (digest.length !== DIGEST_LENGTH || digest.toString("hex") !== hex.toLowerCase())
        throw fail("format", "measured digest")
    return digest
}

/** Builds and signs the report for `nonce` with the identity key (GP-TM-56). */
export async function makeReport(ctx: AttestContext, nonce: Buffer): Promise<Buffer> {
    const m = ctx.measured
    const otp = await otpState(ctx.otp)
    const now = ctx.clock.wallTime()
    const body = encodeReportBody({
        deviceId: ctx.deviceId, nonce: nonce, slot: m.slot, version: m.version,
        securityCounter: m.securityCounter, digest: hexDigest(m.digest), keySlot: m.keySlot,
        trial: m.trial, attempt: m.attempt, otpCounter: otp.counter, keySlots: otp.slots,
        selfTestOk: ctx.selfTest.ok, selfTestFailed: ctx.selfTest.failed.join(","),
        time: now === null ? 0 : Math.floor(now),
    })
    const digest = ctx.crypto.sha256([reportMessage(body)])
    let signature: Buffer
    try {
        signature = await ctx.secureElement.signDigest(SE_SLOT_IDENTITY, digest)
    } catch (e) {
        if (e instanceof SecureElementError) throw fail("identity", "the identity key cannot sign")
        throw e
    }
    return concatBytes([body, signature])
}

/**
 * Serves one request: decodes, authorises, then signs a report for its nonce. Resolves
 * with "ok" and the report, or the failed check and null; the caller audits the check.
 */
export async function serveRequest(
    ctx: AttestContext,
    bytes: Buffer
): Promise<{ check: string; report: Buffer | null; operator: string }> {
    try {
        const request = decodeRequest(bytes)
        await authorizeRequest(ctx, request)
        const operator = ctx.crypto.sha256([request.operatorKey]).toString("hex").slice(0, 16)
        return { check: "ok", report: await makeReport(ctx, request.nonce), operator: operator }
    } catch (e) {
        if (e instanceof AttestError) return { check: e.check, report: null, operator: "" }
        throw e
    }
}

/** What the verifier expects of a report; `digest` and `minCounter` are optional. */
export interface AttestExpectation {
    nonce: Buffer
    digest: Buffer | null
    minCounter: number | null
}

/** Checks an ECDSA P-256 signature over SHA-256(message) (src/audit/verify.ts has one). */
export type ReportSignatureCheck = (pub: Buffer, message: Buffer, sig: Buffer) => Promise<boolean>

/**
 * Verifies a report offline: parses it (AttestError "format" when it cannot), then the
 * signature by the device key, the nonce (a replayed report carries an old one), and the
 * expected image digest and lowest security counter. Throws AttestError naming the
 * first failed check; returns the report when genuine and as expected.
 */
export async function verifyReport(
    check: ReportSignatureCheck,
    devicePub: Buffer,
    bytes: Buffer,
    expect: AttestExpectation
): Promise<AttestReport> {
    const parsed = decodeReport(bytes)
    const r = parsed.report
    if (!(await check(devicePub, reportMessage(parsed.body), parsed.signature)))
        throw fail("signature", "not signed by this device key")
    if (r.nonce.toString("hex") !== expect.nonce.toString("hex"))
        throw fail("nonce", "not the nonce asked for (a replayed report)")
    if (expect.digest !== null && r.digest.toString("hex") !== expect.digest.toString("hex"))
        throw fail("digest", "the running image is not the expected one")
    if (expect.minCounter !== null && r.securityCounter < expect.minCounter)
        throw fail("counter", "security counter below the minimum")
    return r
}
