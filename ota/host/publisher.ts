/**
 * The update publisher of a campaign (docs/update.md; GP-TM-05, GP-TM-18, GP-TM-19): signs
 * an offer for an image, publishes it to each targeted device on bulwark/<id>/ota/offer as
 * an operator, serves the chunks devices ask for on .../ota/request (range requests, and the
 * single-chunk requests of older devices), follows their reports
 * on .../ota/status, and ends when every device has confirmed the new version, refused it,
 * rolled it back, or the time is up. Used by `bulwark ota publish` and the demo.
 * A status counts only when signed by the device's identity key as a status report, for
 * that device, in (boot, seq) order (ota/host/status-auth.ts; GP-TM-41): any other is
 * ignored, counted in `rejectedStatuses` and logged.
 */

import {
    decodeRangeRequest,
    decodeRequest,
    decodeTableRequest,
    encodeChunk,
    encodeTable,
    rangeChunks,
    AgentStatus,
    ChunkRequest,
    RANGE_REQUEST_MAGIC,
} from "../agent-wire"
import { compareVersions } from "../../boot/image"
import { MAX_TARGETS, Offer } from "../offer"
import { MqttMessage, MqttSession } from "../../hal/mqtt"
import { ReleasePrivateKey } from "../../tools/keyfile"
import { connectOperator, OperatorCredentials, SessionReader } from "../../tools/operator-link"
import { chunkHashes, offerForImage, signOffer } from "./offer-sign"
import { CheckError } from "../../hal/errors"
import { TelemetryPosition } from "../../src/telemetry"
import { readStatus, ReadStatus, StatusAuthError } from "./status-auth"

export type { OperatorCredentials }

export interface DeviceProgress {
    deviceId: string
    /** The device's last reported state, "pending" before its first report. */
    state: AgentStatus["state"] | "pending" | "timeout"
    /** Highest byte of the image the device has asked for or reported. */
    offset: number
    size: number
    /** Bytes this publisher served to the device (repeats included). */
    served: number
    running: string | null
    check: string | null
    /** Statuses on its topic that did not verify (never counted as its state). */
    rejectedStatuses: number
    /** The check the last rejected status failed (ota/host/status-auth.ts), null when none. */
    lastRejected: string | null
    /** "signed": its statuses must verify; "unsigned": accepted without (explicit option). */
    statusAuth: "signed" | "unsigned"
}

export interface DeviceResult extends DeviceProgress {
    /** True only when the device confirmed (or already runs) the offered version. */
    ok: boolean
}

export interface PublishOptions {
    broker: { host: string; port: number }
    /** Name the broker certificate must carry (default: the broker host). */
    serverName?: string
    /** PEM of the fleet CA the broker certificate chains to. */
    caPem: string
    operator: OperatorCredentials
    image: Buffer
    key: ReleasePrivateKey
    devices: string[]
    /**
     * Each device's identity public key (65 bytes, uncompressed P-256), from the fleet
     * registry: its statuses must be signed by it. A targeted device without a key is a
     * PublishError "keys" unless `acceptUnsignedStatus`.
     */
    deviceKeys?: Record<string, Buffer>
    /**
     * Follow targeted devices without a key on statuses nobody can verify (devices provisioned
     * before registries kept keys, or firmware that does not sign). Default false. Devices
     * with a key still need signed statuses.
     */
    acceptUnsignedStatus?: boolean
    /** Offer sequence; default: seconds since the epoch (rises between campaigns). */
    sequence?: number
    /** Seconds since the epoch after which the offer is void. */
    expiry?: number | null
    /**
     * Sign a chunk table with this chunk size into the offers (format 2): devices check
     * each chunk when it arrives. At most the devices' update.chunkSize. Absent: format 1.
     */
    chunkTableSize?: number
    /** How long to wait for every device's final status (default 5 minutes). */
    timeoutMs?: number
    /** An offer is sent again to a device that says it idles on another version, at most this often. */
    reofferMs?: number
    onProgress?: (progress: DeviceProgress) => void
    /** Diagnostic lines. */
    log?: (line: string) => void
}

export class PublishError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "PublishError"
    }
}

interface Target {
    progress: DeviceProgress
    offer: Buffer
    sequence: number
    final: boolean
    ok: boolean
    lastOfferMs: number
    /** The device's identity key; null when its statuses are accepted unsigned. */
    publicKey: Buffer | null
    /** (boot, seq) of its last status accepted. */
    after: TelemetryPosition | null
}

const ROOT = "bulwark/"

function deviceOf(topic: string): string | null {
    const levels = topic.split("/")
    if (levels.length !== 4 || levels[0] !== "bulwark" || levels[2] !== "ota") return null
    return levels[1]
}

async function signOffers(options: PublishOptions, base: number): Promise<Map<string, Buffer>> {
    const offers = new Map<string, Buffer>()
    for (let g = 0; g * MAX_TARGETS < options.devices.length; g++) {
        const group = options.devices.slice(g * MAX_TARGETS, (g + 1) * MAX_TARGETS)
        const offer: Offer = await offerForImage(options.image, {
            sequence: base + g,
            expiry: options.expiry ?? null,
            targets: group,
            chunkTableSize: options.chunkTableSize,
        })
        const signed = await signOffer(offer, options.key)
        for (const id of group) offers.set(id, signed)
    }
    return offers
}

/**
 * The identity key statuses of `id` must be signed with; null when the caller accepts its
 * statuses unsigned. PublishError "keys" for a device without a usable key otherwise.
 */
function statusKey(options: PublishOptions, id: string): Buffer | null {
    const key = options.deviceKeys?.[id]
    if (key !== undefined) {
        if (key.length !== 65 || key[0] !== 4)
            throw new PublishError("keys", `device ${id}: the identity key is not 65-byte uncompressed P-256`)
        return key
    }
    if (options.acceptUnsignedStatus === true) return null
    throw new PublishError("keys", `device ${id}: no identity public key, so its status reports cannot be verified`)
}

/**
 * Runs one campaign and returns a result per device, in the order given. Throws
 * PublishError "devices" for an empty or duplicated list, "keys" for a device whose
 * identity key is missing (unless acceptUnsignedStatus) or malformed, before anything is
 * sent; TransportError when the broker cannot be reached or refuses the operator.
 */
export async function publishUpdate(options: PublishOptions): Promise<DeviceResult[]> {
    if (options.devices.length === 0) throw new PublishError("devices", "no device to update")
    if (new Set(options.devices).size !== options.devices.length)
        throw new PublishError("devices", "a device is listed twice")
    const keys = options.devices.map((id) => statusKey(options, id))
    const base = options.sequence ?? Math.floor(Date.now() / 1000)
    const offers = await signOffers(options, base)
    const header = await offerForImage(options.image, { sequence: base })
    const targets = new Map<string, Target>()
    for (let i = 0; i < options.devices.length; i++) {
        const id = options.devices[i]
        targets.set(id, {
            progress: {
                deviceId: id,
                state: "pending",
                offset: 0,
                size: options.image.length,
                served: 0,
                running: null,
                check: null,
                rejectedStatuses: 0,
                lastRejected: null,
                statusAuth: keys[i] === null ? "unsigned" : "signed",
            },
            offer: offers.get(id)!,
            sequence: base + Math.floor(i / MAX_TARGETS),
            final: false,
            ok: false,
            lastOfferMs: 0,
            publicKey: keys[i],
            after: null,
        })
    }

    const session = await connectOperator(options)
    try {
        await session.subscribe(ROOT + "+/ota/status", 1)
        await session.subscribe(ROOT + "+/ota/request", 0)
        for (const [id, t] of targets) await sendOffer(session, id, t)
        await follow(session, options, targets, header.version)
    } finally {
        await session.close()
    }
    return options.devices.map((id) => {
        const t = targets.get(id)!
        return { ...t.progress, ok: t.ok }
    })
}

async function sendOffer(session: MqttSession, id: string, t: Target): Promise<void> {
    t.lastOfferMs = Date.now()
    await session.publish(ROOT + id + "/ota/offer", t.offer, 1)
}

/** The message loop: serves requests and reads statuses until every target is final. */
async function follow(
    session: MqttSession,
    options: PublishOptions,
    targets: Map<string, Target>,
    version: string
): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 300000)
    const reader = new SessionReader(session)
    while ([...targets.values()].some((t) => !t.final)) {
        const left = deadline - Date.now()
        if (left <= 0) break
        const message = await reader.next(Math.min(left, 1000))
        if (message === "timeout") continue
        if (message === null) throw new PublishError("broker", "the broker closed the session")
        const id = deviceOf(message.topic)
        const t = id === null ? undefined : targets.get(id)
        if (id === null || t === undefined) continue
        if (message.topic.endsWith("/ota/request")) await serveChunk(session, options, id, t, message)
        else if (message.topic.endsWith("/ota/status")) await onStatus(session, options, id, t, message, version)
    }
    for (const t of targets.values()) {
        if (t.final) continue
        t.final = true
        t.progress.state = "timeout"
        options.onProgress?.({ ...t.progress })
    }
}

/** Answers a table, range or chunk request of a target; others and malformed ones are ignored. */
async function serveChunk(
    session: MqttSession,
    options: PublishOptions,
    id: string,
    t: Target,
    message: MqttMessage
): Promise<void> {
    const tableFor = decodeTableRequest(message.payload)
    if (tableFor >= 0) {
        await serveTable(session, options, id, t, tableFor)
        return
    }
    let requests: ChunkRequest[]
    try {
        requests = isRange(message.payload)
            ? rangeChunks(decodeRangeRequest(message.payload), options.image.length)
            : [decodeRequest(message.payload)]
    } catch {
        return
    }
    for (const request of requests) {
        if (request.sequence !== t.sequence || t.final) return
        await serveOne(session, options, id, t, request)
    }
}

function isRange(payload: Buffer): boolean {
    return payload.subarray(0, 4).toString("latin1") === RANGE_REQUEST_MAGIC
}

/** One BWCK chunk message for one chunk, counted in the bytes served. */
async function serveOne(
    session: MqttSession,
    options: PublishOptions,
    id: string,
    t: Target,
    request: ChunkRequest
): Promise<void> {
    const data = options.image.subarray(request.offset, request.offset + request.length)
    await session.publish(
        ROOT + id + "/ota/chunk",
        encodeChunk({ sequence: request.sequence, offset: request.offset, data: data }),
        0
    )
    t.progress.served += data.length
    const end = request.offset + data.length
    if (end > t.progress.offset) {
        t.progress.offset = end
        options.onProgress?.({ ...t.progress })
    }
}

/** Answers a table request of an offer with a chunk table. */
async function serveTable(
    session: MqttSession,
    options: PublishOptions,
    id: string,
    t: Target,
    sequence: number
): Promise<void> {
    const size = options.chunkTableSize
    if (size === undefined || sequence !== t.sequence || t.final) return
    const hashes = chunkHashes(options.image, size)
    const table = encodeTable({ sequence: sequence, chunkSize: size, hashes: hashes })
    await session.publish(ROOT + id + "/ota/chunk", table, 0)
}

async function onStatus(
    session: MqttSession,
    options: PublishOptions,
    id: string,
    t: Target,
    message: MqttMessage,
    version: string
): Promise<void> {
    let read: ReadStatus
    try {
        read = await readStatus(message.payload, { deviceId: id, publicKey: t.publicKey, after: t.after })
    } catch (err) {
        if (!(err instanceof StatusAuthError)) throw err
        t.progress.rejectedStatuses++
        t.progress.lastRejected = err.check
        options.log?.(id + ": status rejected (" + err.check + ")")
        options.onProgress?.({ ...t.progress })
        return
    }
    if (read.position !== null) t.after = read.position
    const status: AgentStatus = read.status
    options.log?.(id + ": " + status.state + (status.check ? " (" + status.check + ")" : ""))
    if (t.final) return
    const p = t.progress
    p.running = status.running
    if (status.offset !== undefined && status.offset > p.offset) p.offset = status.offset
    const ours = status.seq === undefined || status.seq === t.sequence

    if (status.state === "idle") {
        p.state = "idle"
        if (compareVersions(status.running, version) === 0) finish(t, true, null)
        else if (Date.now() - t.lastOfferMs >= (options.reofferMs ?? 2000)) await sendOffer(session, id, t)
    } else if (status.state === "confirmed" && status.version === version) {
        p.state = "confirmed"
        finish(t, true, null)
    } else if (status.state === "refused" && ours) {
        p.state = "refused"
        // A device already on this version refuses it as a downgrade: it is up to date.
        finish(t, compareVersions(status.running, version) === 0, status.check ?? null)
    } else if (status.state === "reverted" && ours) {
        p.state = "reverted"
        finish(t, false, status.check ?? "reverted")
    } else if (ours) {
        p.state = status.state
        if (status.check !== undefined) p.check = status.check
    }
    options.onProgress?.({ ...p })
}

function finish(t: Target, ok: boolean, check: string | null): void {
    t.final = true
    t.ok = ok
    t.progress.check = check
}
