/**
 * The device's check of its own stored audit chain (docs/audit-log.md, "Recovery";
 * GP-TM-55): sequence numbers without gaps, each frame linked to the previous one, the
 * open epoch's MACs recomputed in the secure element, and optionally each checkpoint's
 * signature. A sector whose erase a power cut interrupted is told apart from tampering.
 */

import { Crypto } from "../../hal/crypto"
import { equalBytes } from "../../boot/bytes"
import { EVENTS, frameHash } from "./chain"
import { AuditRecord, KIND_CHECKPOINT, KIND_RECYCLE, detailNumber } from "./record"

/** What the device found when it checked its own log; firstBadSeq -1 when nothing. */
export interface Integrity {
    ok: boolean
    firstBadSeq: number
    reason: string
}

export const INTEGRITY_OK: Integrity = { ok: true, firstBadSeq: -1, reason: "ok" }

export interface ChainFindings {
    problem: Integrity
    /** `first=` of the newest recycle record: records before it are stated lost. */
    recycleFirst: number
    /** Detail of the newest integrity record, so a finding is recorded only once. */
    lastIntegrityDetail: string
    /** Records below this are left-overs of an interrupted erase, no longer live. */
    liveFrom: number
    /** Records of the open key epoch (MACed with the key the element holds now). */
    openCount: number
    /** The element no longer holds the key the open epoch was MACed with. */
    keyLost: boolean
}

export interface ChainCheckInput {
    crypto: Crypto
    /** Sector being recycled (head sector full), or -1: its frames may be half erased. */
    recycleTarget: number
    keyEpoch: number
    /** SE MAC of a body with the current audit key, or null when the slot is empty. */
    macOf: (body: Buffer) => Promise<Buffer | null>
    /** Checks a signed checkpoint; null to skip signatures. */
    checkpointValid: ((record: AuditRecord) => Promise<boolean>) | null
}

/** Calls the visitor for each stored frame, oldest first, with the sector it is in. */
export type ChainSource = (
    visit: (record: AuditRecord, sector: number) => Promise<void>
) => Promise<void>

export async function checkChain(
    source: ChainSource,
    input: ChainCheckInput
): Promise<ChainFindings> {
    const found: ChainFindings = {
        problem: INTEGRITY_OK,
        recycleFirst: 0,
        lastIntegrityDetail: "",
        liveFrom: 0,
        openCount: 0,
        keyLost: false,
    }
    let expectSeq = -1
    let prevHash: Buffer | null = null
    let outsideTarget = 0

    function flag(seq: number, reason: string): void {
        if (found.problem.ok) found.problem = { ok: false, firstBadSeq: seq, reason: reason }
    }

    await source(async (record, sector) => {
        const hash = frameHash(input.crypto, record.frame)
        const broken =
            (expectSeq >= 0 && record.seq !== expectSeq) ||
            (prevHash !== null && !equalBytes(record.prevHash, prevHash))
        if (broken && outsideTarget === 0 && input.recycleTarget >= 0) {
            // Only frames of the sector being erased came before: a cut erase, not tampering.
            found.liveFrom = record.seq
        } else if (expectSeq >= 0 && record.seq !== expectSeq) {
            flag(expectSeq, "missing")
        } else if (broken) {
            flag(record.seq, "chain")
        }
        if (sector !== input.recycleTarget) outsideTarget++
        expectSeq = record.seq + 1
        prevHash = hash

        if (record.kind === KIND_RECYCLE) found.recycleFirst = detailNumber(record.detail, "first")
        if (record.event === EVENTS.integrity || record.event === EVENTS.keyLost)
            found.lastIntegrityDetail = record.detail
        if (record.kind === KIND_CHECKPOINT && input.checkpointValid !== null) {
            if (!(await input.checkpointValid(record))) flag(record.seq, "signature")
        }
        if (record.epoch === input.keyEpoch && record.kind !== KIND_CHECKPOINT) {
            found.openCount++
            const mac = await input.macOf(record.body)
            if (mac === null) found.keyLost = true
            else if (!equalBytes(mac, record.mac)) flag(record.seq, "mac")
        }
    })
    return found
}
