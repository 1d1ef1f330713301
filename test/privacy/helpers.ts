/**
 * Shared arrangements of the privacy tests (GP-TM-10..14): a simulated board with a known
 * wall time, the prefs store and privacy manager opened on it, an audit sink that records
 * into an array, operator keys and signed requests as the backend's tool would make them.
 */

import { p256 } from "@noble/curves/nist.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { PrefsStore, PARTITION_PREFS } from "../../src/prefs"
import { PrivacyManager } from "../../src/privacy/manager"
import { AuditSink } from "../../src/privacy/state"
import { DataCategory } from "../../src/privacy/inventory"
import { RightsDeps } from "../../src/privacy/rights"
import { secureElementCheck, signedMessage } from "../../src/privacy/requests"
import { SimBoard } from "../../sim/board"
import { TestBoardOptions, makeTestBoard } from "../../sim/testing"

/** 2023-11-14T22:13:20Z: the wall time test boards start with. */
export const T0 = 1700000000
export const DEVICE_ID = "dev-privacy01"

export interface AuditRow {
    event: string
    actor: string
    outcome: string
    detail: string
}

export interface Rig {
    board: SimBoard
    prefs: PrefsStore
    manager: PrivacyManager
    audit: AuditRow[]
    sink: AuditSink
}

export function auditInto(rows: AuditRow[]): AuditSink {
    return async (event, actor, outcome, detail) => {
        rows.push({ event, actor, outcome, detail })
    }
}

export async function privacyBoard(options: TestBoardOptions = {}): Promise<SimBoard> {
    return makeTestBoard({ wallTime: T0, ...options })
}

/** Opens prefs and the privacy manager on `board` (after a power cycle, too). */
export async function openRig(
    board: SimBoard,
    options: { inventory?: DataCategory[]; notice?: string; audit?: AuditRow[] } = {}
): Promise<Rig> {
    const audit = options.audit ?? []
    const sink = auditInto(audit)
    const prefs = await PrefsStore.open(board.flash.partition(PARTITION_PREFS), board.crypto, {
        secureElement: board.secureElement,
        onTamper: sink,
    })
    const manager = await PrivacyManager.open({
        prefs,
        clock: board.clock,
        audit: sink,
        inventory: options.inventory,
        notice: options.notice,
    })
    return { board, prefs, manager, audit, sink }
}

/** A rig on a fresh board. */
export async function freshRig(options: TestBoardOptions = {}): Promise<Rig> {
    return openRig(await privacyBoard(options))
}

/** Every partition but prefs, as raw bytes: what an erasure must leave untouched. */
export function otherPartitions(board: SimBoard): Map<string, string> {
    const out = new Map<string, string>()
    for (const name of board.flash.partitionNames()) {
        if (name === PARTITION_PREFS) continue
        const p = board.flash.partition(name)
        out.set(name, board.flash.peek(name, 0, p.size).toString("hex"))
    }
    return out
}

export const operatorSecret = Buffer.from(sha256(Buffer.from("bulwark privacy test operator")))
export const operatorPublic = Buffer.from(p256.getPublicKey(operatorSecret, false))
export const strangerSecret = Buffer.from(sha256(Buffer.from("bulwark privacy test stranger")))
export const strangerPublic = Buffer.from(p256.getPublicKey(strangerSecret, false))

export interface BodyFields {
    device?: string
    id?: string
    seq?: number
    expires?: number
    right: string
    args?: Record<string, unknown>
}

/** The body JSON of an operator request, as the backend writes it. */
export function requestBody(f: BodyFields): string {
    return JSON.stringify({
        v: 1,
        device: f.device ?? DEVICE_ID,
        id: f.id ?? "req-1",
        seq: String(f.seq ?? 1),
        expires: String(f.expires ?? T0 + 3600),
        right: f.right,
        args: f.args ?? {},
    })
}

/** Signs `body` with `secret` (ECDSA P-256 over SHA-256(label || body)) into an envelope. */
export function signedEnvelope(
    body: string,
    secret: Buffer = operatorSecret,
    key: Buffer = Buffer.from(p256.getPublicKey(secret, false))
): Buffer {
    const digest = sha256(signedMessage(Buffer.from(body)))
    const sig = Buffer.from(p256.sign(digest, secret, { prehash: false }))
    return Buffer.from(
        JSON.stringify({ v: 1, body, key: key.toString("hex"), sig: sig.toString("hex") })
    )
}

export function signedRequest(f: BodyFields, secret: Buffer = operatorSecret): Buffer {
    return signedEnvelope(requestBody(f), secret)
}

/** Rights wiring on a rig: the owner's console session is `session.owner`. */
export function rightsFor(rig: Rig, session: { owner: boolean }): RightsDeps {
    return {
        manager: rig.manager,
        prefs: rig.prefs,
        crypto: rig.board.crypto,
        clock: rig.board.clock,
        audit: rig.sink,
        deviceId: DEVICE_ID,
        consoleOwner: () => session.owner,
        operatorKeys: [operatorPublic],
        verify: secureElementCheck(rig.board.crypto, rig.board.secureElement),
    }
}

/** The JSON an export reply carries, parsed; fails the test when there is none. */
export function exportedData(doc: Record<string, any> | null): Record<string, any[]> {
    if (doc === null) throw new Error("no document in the reply")
    return doc.data
}

/** Fills a rig with some of everything: profile, preferences, location, history, telemetry. */
export async function populate(rig: Rig): Promise<Rig> {
    const m = rig.manager
    await m.collect("owner-profile", { name: "Zoë Ångström", contact: "zoe@example.org" })
    await m.collect("preferences", { unit: "c", brightness: 55, nightMode: 1 })
    await m.setConsent("location", true, "console:owner")
    await m.collect("location", { lat: 59.3293, lon: 18.0686 })
    await m.collect("usage-history", { day: 19675, energy: 4321, meanTemp: 20.44 })
    await m.setConsent("telemetry", true, "console:owner")
    await m.collect("telemetry", { temperature: 21.5, humidity: 44 })
    await m.collect("telemetry", { power: 230 })
    return rig
}
