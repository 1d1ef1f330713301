/**
 * Personal data in the running app (docs/privacy.md; GP-TM-10..14): the privacy manager on
 * the prefs partition, owner readings collected only with `mayCollect` and sent from the
 * manager's own holding on bulwark/<id>/data/telemetry only while `mayPublish`, retention
 * purges, operator-signed requests on privacy/request and "privacy ..." on the console.
 */

import { Profile } from "../boot/profile"
import { Board } from "../hal/board"
import { FlashPartition } from "../hal/flash"
import { AuditLog } from "./audit/log"
import { admitCommand } from "./app-audit"
import { InboundMessage, OWN_ECHO } from "./app-routes"
import { MessageError } from "./messages"
import { PARTITION_PREFS, PrefsStore } from "./prefs"
import { PrivacyManager } from "./privacy/manager"
import { secureElementCheck } from "./privacy/requests"
import { RightsDeps, handleOperatorRequest, replyPayload, REPLY_SUFFIX } from "./privacy/rights"
import { RateLimiter } from "./ratelimit"

/** The inventory category of the owner's readings (src/privacy/inventory.ts). */
export const READINGS_CATEGORY = "telemetry"
/** The first bytes of a prefs-store copy (src/prefs.ts). */
const PREFS_MAGIC = "BWPF"
/** How often held data past its retention is purged. */
export const PURGE_PERIOD_MS = 3600000

/**
 * Opens the manager and the rights wiring, or null on a board without a prefs partition
 * or secure element (the app then collects no personal data at all).
 */
export async function openPrivacy(
    board: Board,
    profile: Profile,
    audit: AuditLog | null,
    deviceId: string,
    consoleOwner: () => boolean
): Promise<RightsDeps | null> {
    const flash = board.flash
    const se = board.secureElement
    if (flash === undefined || se === undefined) return null
    if (flash.partitionNames().indexOf(PARTITION_PREFS) < 0) return null
    const partition = flash.partition(PARTITION_PREFS)
    if (!(await holdsPrefsStore(partition))) return null
    const sink = auditSink(audit)
    // Sealed by the secure element: a record written with a flash programmer is refused,
    // erased and reported as a tamper event (GP-TM-31).
    const prefs = await PrefsStore.open(partition, board.crypto, {
        secureElement: se,
        onTamper: sink,
    })
    const manager = await PrivacyManager.open({ prefs: prefs, clock: board.clock, audit: sink })
    const keys = profile.security.operatorKeys ? profile.security.operatorKeys : []
    const operatorKeys: Buffer[] = []
    for (let i = 0; i < keys.length; i++) operatorKeys.push(Buffer.from(keys[i], "hex"))
    return {
        manager: manager,
        prefs: prefs,
        crypto: board.crypto,
        clock: board.clock,
        audit: sink,
        deviceId: deviceId,
        consoleOwner: consoleOwner,
        operatorKeys: operatorKeys,
        verify: secureElementCheck(board.crypto, se),
    }
}

/**
 * True when each copy of the partition starts erased or with a prefs-store record. Data in
 * another format (a product's own, an older firmware's) is not ours to clean up: opening
 * the store would erase it, and owner preferences must survive an update (GP-TM-20).
 */
async function holdsPrefsStore(partition: FlashPartition): Promise<boolean> {
    const half = Math.floor(partition.size / partition.sectorSize / 2) * partition.sectorSize
    const starts = [0, half]
    for (let i = 0; i < starts.length; i++) {
        const head = await partition.read(starts[i], 4)
        const erased = head[0] === 0xff && head[1] === 0xff && head[2] === 0xff && head[3] === 0xff
        if (!erased && head.toString() !== PREFS_MAGIC) return false
    }
    return true
}

function auditSink(
    audit: AuditLog | null
): (event: string, actor: string, outcome: string, detail: string) => Promise<void> {
    return async function (event: string, actor: string, outcome: string, detail: string) {
        if (audit === null) return
        await audit.append({ event: event, actor: actor, outcome: outcome, detail: detail })
    }
}

/**
 * Inbound bulwark/<id>/privacy/...: "request" is a command (a token each); the device's
 * own "reply" comes back through its subscription and is ignored; anything else refused.
 */
export function privacyDecoder(
    limiter: RateLimiter
): (payload: Buffer, path: string[]) => InboundMessage {
    return function (payload: Buffer, path: string[]): InboundMessage {
        if (path.length === 1 && path[0] === "reply") return { kind: OWN_ECHO, payload: payload }
        if (path.length !== 1 || path[0] !== "request")
            throw new MessageError("topic", "privacy subtopic")
        admitCommand(limiter, "privacy")
        return { kind: "request", payload: payload }
    }
}

/** Runs an operator-signed request and replies on privacy/reply (docs/privacy.md). */
export function privacyHandler(
    deps: RightsDeps,
    publish: (suffix: string, payload: Buffer, reliable: boolean) => Promise<void>
): (m: InboundMessage, path: string[]) => Promise<void> {
    return async function (m: InboundMessage, path: string[]): Promise<void> {
        if (m.kind !== "request") return
        const reply = await handleOperatorRequest(deps, m.payload)
        await publish(REPLY_SUFFIX, replyPayload(reply), false)
    }
}

/**
 * One telemetry period of the owner's readings: collected only when `mayCollect` allows
 * (consent, no restriction), then the held items are sent, while `mayPublish` allows,
 * with `send` (no offline queue: the manager's holding is the queue a withdrawal reaches).
 */
export async function privacyTelemetry(
    manager: PrivacyManager,
    readings: (() => Promise<{ [name: string]: unknown } | null>) | undefined,
    send: (payload: Buffer) => Promise<boolean>
): Promise<void> {
    if (readings !== undefined && manager.mayCollect(READINGS_CATEGORY)) {
        const sample = await readings()
        if (sample !== null) await manager.collect(READINGS_CATEGORY, sample)
    }
    if (manager.mayPublish(READINGS_CATEGORY)) await manager.publishHeld(READINGS_CATEGORY, send)
}
