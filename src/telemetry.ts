/**
 * Signed telemetry (docs/telemetry.md; GP-TM-41): the envelope the device publishes on
 * bulwark/<id>/telemetry, signed end to end by the identity key in the secure element, and
 * the offline verifier of the backend. Messages are ordered by (boot number, sequence): the
 * boot number comes once per boot from a secure-element monotonic counter. Every length is
 * checked before use; a bad envelope is a TelemetryError naming the check.
 *
 * The same envelope carries every other message the device sends its fleet in plain form:
 * the update agent's status reports on bulwark/<id>/ota/status (docs/update-format.md), the
 * owner's readings on bulwark/<id>/data/telemetry and the replies to privacy requests on
 * bulwark/<id>/privacy/reply (docs/privacy.md). Only the label the signature covers differs
 * (ENVELOPE_LABELS), so a message signed for one kind never verifies as another.
 */

import { concatBytes, readU16, readU32, writeU16, writeU32 } from "../boot/bytes"
import { isSafeName } from "../boot/profile"
import { Clock } from "../hal/clock"
import { Crypto } from "../hal/crypto"
import { CheckError, SecureElementError } from "../hal/errors"
import { SE_COUNTER_TELEMETRY, SE_SLOT_IDENTITY, SecureElement } from "../hal/secure-element"

export const TELEMETRY_MAGIC = "BWTM"
export const TELEMETRY_VERSION = 1
/** Prefix of the message the signature covers, so no other signature of the key fits. */
export const TELEMETRY_LABEL = "bulwark-telemetry-v1"
/** The label of an update status report in the same envelope (bulwark/<id>/ota/status). */
export const OTA_STATUS_LABEL = "bulwark-ota-status-v1"
/** The label of one item of the owner's readings (bulwark/<id>/data/telemetry). */
export const DATA_TELEMETRY_LABEL = "bulwark-data-telemetry-v1"
/** The label of a reply to a privacy request (bulwark/<id>/privacy/reply). */
export const PRIVACY_REPLY_LABEL = "bulwark-privacy-reply-v1"
/** Every label an envelope is signed under; none is a prefix of another. */
export const ENVELOPE_LABELS = [
    TELEMETRY_LABEL,
    OTA_STATUS_LABEL,
    DATA_TELEMETRY_LABEL,
    PRIVACY_REPLY_LABEL,
]
export const TELEMETRY_PUBLIC_KEY_LENGTH = 65
export const TELEMETRY_SIGNATURE_LENGTH = 64
/**
 * The largest body of a health telemetry or status envelope; the health body is about 100
 * bytes. Any longer body of those kinds is refused as "format".
 */
export const TELEMETRY_MAX_BODY = 2048
/**
 * The largest body of a data-telemetry or privacy-reply envelope: all the 16-bit length
 * allows, as a privacy export holds every item the device holds (transport.maxPayload is
 * usually the tighter bound).
 */
export const ENVELOPE_MAX_BODY = 65535
const MAX_DEVICE_ID = 64
const MAX_U32 = 0xffffffff
/** Magic, version, id length, boot, sequence, time, body length: the fixed bytes. */
const FIXED_LENGTH = 4 + 1 + 1 + 4 + 4 + 4 + 2

/**
 * Checks: "format" (not an envelope, a length or field out of bounds), "signature" (not
 * signed by the given device key), "device" (another device id than expected), "replayed"
 * (the last message seen again), "order" (older than the last one seen); on the device
 * side "identity" (the identity key cannot sign) and "counter" (no boot number).
 */
export class TelemetryError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "TelemetryError"
    }
}

function fail(check: string, message: string): TelemetryError {
    return new TelemetryError(check, message)
}

/** A decoded envelope. `boot` and `seq` are 1..2^32-1; `time` is 0 when unknown. */
export interface TelemetryMessage {
    deviceId: string
    /** The secure element's telemetry counter, taken once per boot. */
    boot: number
    /** The message's number within the boot, from 1. */
    seq: number
    /** Wall-clock seconds when it was signed; 0 when the device did not know the time. */
    time: number
    body: Buffer
}

function isCount(value: number): boolean {
    return value >= 1 && value <= MAX_U32 && Math.floor(value) === value
}

function u32Of(value: number): Buffer {
    const b = Buffer.alloc(4)
    writeU32(b, 0, value)
    return b
}

/**
 * The part the signature covers (docs/telemetry.md, "Envelope"); the body is bounded by
 * the kind's maxBodyOf (`label`, telemetry when absent).
 */
export function encodeTelemetryBody(m: TelemetryMessage, label?: string): Buffer {
    // A safe name (a-z, 0-9, '-', '.'; 1..64) is ASCII, so its length in bytes is the same.
    if (!isSafeName(m.deviceId)) throw fail("format", "device id")
    const id = Buffer.from(m.deviceId)
    if (!isCount(m.boot)) throw fail("format", "boot number")
    if (!isCount(m.seq)) throw fail("format", "sequence")
    if (m.time < 0 || m.time > MAX_U32 || Math.floor(m.time) !== m.time)
        throw fail("format", "time")
    if (m.body.length > maxBodyOf(label)) throw fail("format", "body length")

    const head = Buffer.alloc(6)
    const magic = Buffer.from(TELEMETRY_MAGIC)
    for (let i = 0; i < 4; i++) head[i] = magic[i]
    head[4] = TELEMETRY_VERSION
    head[5] = id.length
    const bodyLength = Buffer.alloc(2)
    writeU16(bodyLength, 0, m.body.length)
    return concatBytes([head, id, u32Of(m.boot), u32Of(m.seq), u32Of(m.time), bodyLength, m.body])
}

function labelOf(label: string | undefined): string {
    if (label === undefined) return TELEMETRY_LABEL
    if (ENVELOPE_LABELS.indexOf(label) < 0) throw fail("format", "envelope label")
    return label
}

/** The longest body an envelope of `label`'s kind carries (telemetry when absent). */
export function maxBodyOf(label?: string): number {
    const kind = labelOf(label)
    if (kind === TELEMETRY_LABEL || kind === OTA_STATUS_LABEL) return TELEMETRY_MAX_BODY
    return ENVELOPE_MAX_BODY
}

/**
 * The message the signature covers: the label of the kind (telemetry when absent; one of
 * ENVELOPE_LABELS), then every byte before the signature.
 */
export function telemetryMessage(signed: Buffer, label?: string): Buffer {
    return concatBytes([Buffer.from(labelOf(label)), signed])
}

/**
 * Parses an envelope; its length must be exact and its body within maxBodyOf(`label`)
 * (telemetry when absent). Returns the fields, the signed part and the signature; checks
 * no signature (verifyTelemetry does). Throws TelemetryError "format".
 */
export function decodeTelemetry(bytes: Buffer, label?: string): {
    message: TelemetryMessage
    signed: Buffer
    signature: Buffer
} {
    const maxBody = maxBodyOf(label)
    if (bytes.length < FIXED_LENGTH + 1 + TELEMETRY_SIGNATURE_LENGTH)
        throw fail("format", "length")
    if (bytes.slice(0, 4).toString("hex") !== Buffer.from(TELEMETRY_MAGIC).toString("hex"))
        throw fail("format", "magic")
    if (bytes[4] !== TELEMETRY_VERSION) throw fail("format", "version")
    const idLength = bytes[5]
    if (idLength < 1 || idLength > MAX_DEVICE_ID) throw fail("format", "device id")

    // The id and the fixed fields must fit before the signature, then the body exactly.
    const bodyStart = FIXED_LENGTH + idLength
    if (bytes.length < bodyStart + TELEMETRY_SIGNATURE_LENGTH) throw fail("format", "length")
    const deviceId = bytes.slice(6, 6 + idLength).toString()
    if (!isSafeName(deviceId)) throw fail("format", "device id")
    const at = 6 + idLength
    const boot = readU32(bytes, at)
    const seq = readU32(bytes, at + 4)
    const time = readU32(bytes, at + 8)
    const bodyLength = readU16(bytes, at + 12)
    if (!isCount(boot)) throw fail("format", "boot number")
    if (!isCount(seq)) throw fail("format", "sequence")
    if (bodyLength > maxBody) throw fail("format", "body length")
    const end = bodyStart + bodyLength
    if (bytes.length !== end + TELEMETRY_SIGNATURE_LENGTH) throw fail("format", "length")

    return {
        message: {
            deviceId: deviceId,
            boot: boot,
            seq: seq,
            time: time,
            body: bytes.slice(bodyStart, end),
        },
        signed: bytes.slice(0, end),
        signature: bytes.slice(end),
    }
}

/**
 * Signs every kind of envelope with the identity key (device side), one (boot, seq) order
 * for all kinds. The boot number is taken
 * from the secure element's telemetry counter at the first message of a boot, not at each
 * one (the counter lives in the element's own non-volatile memory, which wears); should
 * the sequence ever run out, the next message takes a new boot number. Signings run one at
 * a time (the session's fiber and the main loop both sign), so numbers follow signing order.
 */
export class TelemetrySigner {
    private boot = 0
    private seq = 0
    private busy = false

    constructor(
        private readonly secureElement: SecureElement,
        private readonly crypto: Crypto,
        private readonly clock: Clock,
        private readonly deviceId: string
    ) {}

    /** The (boot, seq) of the last message signed; (0, 0) before the first. */
    position(): { boot: number; seq: number } {
        return { boot: this.boot, seq: this.seq }
    }

    /**
     * The signed envelope of `body` under `label` (telemetry when absent). TelemetryError
     * "counter" when the element gives no boot number, "identity" when its identity key
     * cannot sign, "format" for a body over the kind's maxBodyOf or an unknown label. A power
     * cut propagates.
     */
    async sign(body: Buffer, label?: string): Promise<Buffer> {
        const kind = labelOf(label)
        if (body.length > maxBodyOf(kind)) throw fail("format", "body length")
        while (this.busy) await this.clock.sleep(1)
        this.busy = true
        try {
            return await this.signNow(body, kind)
        } finally {
            this.busy = false
        }
    }

    private async signNow(body: Buffer, label: string): Promise<Buffer> {
        if (this.boot === 0 || this.seq >= MAX_U32) {
            try {
                this.boot = await this.secureElement.incrementCounter(SE_COUNTER_TELEMETRY)
            } catch (e) {
                if (e instanceof SecureElementError) throw fail("counter", "no boot number")
                throw e
            }
            this.seq = 0
        }
        this.seq = this.seq + 1

        const now = this.clock.wallTime()
        let time = 0
        if (now !== null && now > 0 && now <= MAX_U32) time = Math.floor(now)
        const signed = encodeTelemetryBody({
            deviceId: this.deviceId, boot: this.boot, seq: this.seq, time: time, body: body,
        }, label)
        const digest = this.crypto.sha256([telemetryMessage(signed, label)])
        let signature: Buffer
        try {
            signature = await this.secureElement.signDigest(SE_SLOT_IDENTITY, digest)
        } catch (e) {
            if (e instanceof SecureElementError)
                throw fail("identity", "the identity key cannot sign")
            throw e
        }
        return concatBytes([signed, signature])
    }
}

/** Checks an ECDSA P-256 signature over SHA-256(message) (src/audit/verify.ts has one). */
export type TelemetrySignatureCheck = (
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer
) => Promise<boolean>

/** Where a message stands in a device's order: its boot number and sequence. */
export interface TelemetryPosition {
    boot: number
    seq: number
}

/** What the verifier expects; every field is optional (null: not checked). */
export interface TelemetryExpectation {
    /** The device id the message must carry, e.g. the one in the topic it came on. */
    deviceId: string | null
    /** The last (boot, seq) accepted from this device: only a later one passes. */
    after: TelemetryPosition | null
    /** The kind the message must have been signed as (ENVELOPE_LABELS); absent: telemetry. */
    label?: string
}

/**
 * The ordering rule (docs/telemetry.md, "Ordering"): `position` must be strictly after
 * `after`, the last (boot, seq) accepted (null: none yet, anything passes). Throws
 * TelemetryError "replayed" when equal, "order" when older. Pure: it checks no signature
 * (verifyTelemetry calls it once the signature and device id passed).
 */
export function checkTelemetryOrder(
    position: TelemetryPosition,
    after: TelemetryPosition | null
): void {
    if (after === null) return
    if (position.boot === after.boot && position.seq === after.seq)
        throw fail("replayed", "the last message seen, again")
    if (position.boot < after.boot || (position.boot === after.boot && position.seq < after.seq))
        throw fail("order", "older than the last message seen")
}

/**
 * Verifies an envelope offline (backend side): parses it ("format"), checks the signature
 * by the device key under the expected label ("signature"; an envelope of one kind, e.g. a
 * status report, does not pass as another, e.g. telemetry), the device id when one is expected ("device"), and that
 * (boot, seq) is strictly after `expect.after` ("replayed" when equal, "order" when older).
 * Throws TelemetryError naming the first failed check; returns the message when genuine.
 */
export async function verifyTelemetry(
    check: TelemetrySignatureCheck,
    devicePub: Buffer,
    bytes: Buffer,
    expect: TelemetryExpectation
): Promise<TelemetryMessage> {
    if (devicePub.length !== TELEMETRY_PUBLIC_KEY_LENGTH || devicePub[0] !== 4)
        throw fail("format", "device public key")
    const label = labelOf(expect.label)
    const parsed = decodeTelemetry(bytes, label)
    const m = parsed.message
    if (!(await check(devicePub, telemetryMessage(parsed.signed, label), parsed.signature)))
        throw fail("signature", "not signed by this device key")
    if (expect.deviceId !== null && m.deviceId !== expect.deviceId)
        throw fail("device", "another device's telemetry")

    checkTelemetryOrder({ boot: m.boot, seq: m.seq }, expect.after)
    return m
}
