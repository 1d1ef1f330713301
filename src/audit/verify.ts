/**
 * Offline verification of an audit export with nothing but the device's public key
 * (docs/audit-log.md, "Verifying an export"; GP-TM-55). Anchors are signatures by the
 * device identity key: the export header (head hash) and the checkpoints in the log. A
 * record is proven when a chain of hashes leads from it to an anchor; the report names
 * the first record that was altered, removed, reordered or forged.
 */

import { Crypto } from "../../hal/crypto"
import { checkpointMessage, EVENTS, frameHash } from "./chain"
import { ExportError, NO_BAD_SEQ, decodeHeader, exportMessage, splitEntries } from "./export"
import { AuditRecord, KIND_CHECKPOINT, KIND_RECYCLE, decodeFrame, detailNumber } from "./record"

/**
 * "malformed" (the export's own structure), "forged" (a signature that does not verify,
 * or a record no anchor vouches for), "altered", "removed", "reordered", and
 * "device-detected" (the device itself found its stored log broken at this record).
 */
export interface BadRecord {
    /** Position in the export (0 = first record); -1 for the header. */
    index: number
    /** Sequence number of the bad record (or of the missing one), -1 when unknown. */
    seq: number
    problem: string
    detail: string
}

export interface VerifyReport {
    genuine: boolean
    deviceId: string
    records: number
    firstSeq: number
    headSeq: number
    /** Records proven by a signature (the header or a checkpoint) through the chain. */
    proven: number
    /** Checkpoints whose signature verified. */
    checkpoints: number
    /** Records recycled before the first one exported, as the log itself states. */
    lostBefore: number
    firstBad: BadRecord | null
    /** With a forger who re-computed hashes: the first record no anchor proves. */
    unprovenFrom: number
}

/** Checks an ECDSA P-256 signature over SHA-256(message) with a public key. */
export type SignatureCheck = (
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer
) => Promise<boolean>

/** A SignatureCheck on the HAL Crypto (the host or any board with ECDSA verify). */
export function cryptoSignatureCheck(crypto: Crypto): SignatureCheck {
    return async function (publicKey: Buffer, message: Buffer, signature: Buffer) {
        return await crypto.verify("ecdsa-p256-sha256", publicKey, message, signature)
    }
}

interface Entry {
    record: AuditRecord | null
    hash: Buffer | null
    error: string
    proven: boolean
    anchor: boolean
}

function emptyReport(deviceId: string): VerifyReport {
    return {
        genuine: false,
        deviceId: deviceId,
        records: 0,
        firstSeq: 0,
        headSeq: 0,
        proven: 0,
        checkpoints: 0,
        lostBefore: 0,
        firstBad: null,
        unprovenFrom: -1,
    }
}

function same(a: Buffer, b: Buffer): boolean {
    return a.length === b.length && a.toString("hex") === b.toString("hex")
}

/** Marks records proven walking back from an anchor that vouches for (seq, hash) at `pos`. */
function walkBack(entries: Entry[], pos: number, seq: number, hash: Buffer): void {
    let expectSeq = seq
    let expectHash = hash
    for (let p = pos; p >= 0; p--) {
        const e = entries[p]
        if (e.record === null || e.hash === null) return
        if (e.record.seq !== expectSeq || !same(e.hash, expectHash)) return
        e.proven = true
        expectSeq = expectSeq - 1
        expectHash = e.record.prevHash
    }
}

function positionOfSeq(entries: Entry[], seq: number, except: number): number {
    for (let i = 0; i < entries.length; i++)
        if (i !== except && entries[i].record !== null && entries[i].record!.seq === seq) return i
    return -1
}

function bad(index: number, seq: number, problem: string, detail: string): BadRecord {
    return { index: index, seq: seq, problem: problem, detail: detail }
}

/** The first piece of evidence, scanning in export order. */
function firstEvidence(entries: Entry[], firstSeq: number, headSeq: number): BadRecord | null {
    for (let i = 0; i < entries.length; i++) {
        const e = entries[i]
        const expected = firstSeq + i
        if (e.record === null)
            return bad(i, expected, "altered", "record does not parse: " + e.error)
        const r = e.record
        if (!e.proven) {
            const twin = positionOfSeq(entries, r.seq, i)
            if (twin >= 0 && entries[twin].proven)
                return bad(i, r.seq, "forged", "a proven record has the same seq")
        }
        if (r.seq !== expected) {
            const at = positionOfSeq(entries, expected, i)
            if (r.seq < expected && !e.proven) return bad(i, r.seq, "forged", "duplicate seq")
            if (at >= 0) return bad(i, expected, "reordered", "found at index " + at)
            return bad(i, expected, "removed", "missing from the export")
        }
        if (r.kind === KIND_CHECKPOINT && r.signature.length > 0 && !e.anchor)
            return bad(i, r.seq, "altered", "checkpoint signature does not verify")
        if (i > 0 && !same(r.prevHash, entries[i - 1].hash!)) {
            if (e.proven) return bad(i - 1, expected - 1, "altered", "hash differs from the chain")
            return bad(i, expected, "altered", "does not link to the previous record")
        }
        if (r.seq === headSeq && i === entries.length - 1 && !e.proven)
            return bad(i, r.seq, "altered", "hash differs from the signed head")
    }
    return null
}

/** A proven "audit-integrity" failure: the device found its own stored log broken. */
function deviceFinding(entries: Entry[]): BadRecord | null {
    for (let i = 0; i < entries.length; i++) {
        const r = entries[i].record
        if (r === null || !entries[i].proven) continue
        if (r.event !== EVENTS.integrity || r.outcome !== "failure") continue
        const seq = detailNumber(r.detail, "seq")
        const at = positionOfSeq(entries, seq, -1)
        return bad(at, seq, "device-detected", "recorded by the device at seq " + r.seq)
    }
    return null
}

/**
 * Verifies an export against the device public key (65-byte P-256). Never throws for bad
 * input: everything wrong ends up in `firstBad`.
 */
export async function verifyExport(
    crypto: Crypto,
    checkSignature: SignatureCheck,
    devicePublicKey: Buffer,
    exportBytes: Buffer
): Promise<VerifyReport> {
    let parsed
    try {
        parsed = decodeHeader(exportBytes)
    } catch (e) {
        const report = emptyReport("")
        const detail = e instanceof ExportError ? e.message : "header"
        report.firstBad = bad(-1, -1, "malformed", "export header: " + detail)
        return report
    }
    const h = parsed.header
    const report = emptyReport(h.deviceId)
    report.firstSeq = h.firstSeq
    report.headSeq = h.headSeq
    if (!(await checkSignature(devicePublicKey, exportMessage(parsed.body), parsed.signature))) {
        report.firstBad = bad(-1, -1, "forged", "export signature does not verify")
        return report
    }

    const split = splitEntries(exportBytes, parsed.next)
    const entries: Entry[] = []
    for (let i = 0; i < split.frames.length; i++) {
        const entry: Entry = { record: null, hash: null, error: "", proven: false, anchor: false }
        try {
            entry.record = decodeFrame(split.frames[i])
            entry.hash = frameHash(crypto, split.frames[i])
        } catch (e) {
            entry.error = e instanceof Error ? e.message : "frame"
        }
        entries.push(entry)
    }
    report.records = entries.length

    // Anchors: each valid checkpoint proves itself and what it links to; the header
    // proves the head.
    for (let i = 0; i < entries.length; i++) {
        const r = entries[i].record
        if (r === null || r.kind !== KIND_CHECKPOINT || r.signature.length === 0) continue
        const message = checkpointMessage(r.body, r.mac)
        if (!(await checkSignature(devicePublicKey, message, r.signature))) continue
        entries[i].anchor = true
        entries[i].proven = true
        report.checkpoints++
        if (i > 0) walkBack(entries, i - 1, r.seq - 1, r.prevHash)
    }
    if (h.count > 0) {
        const at = positionOfSeq(entries, h.headSeq, -1)
        if (at >= 0) walkBack(entries, at, h.headSeq, h.headHash)
    }
    for (let i = 0; i < entries.length; i++) {
        if (entries[i].proven) report.proven++
        else if (report.unprovenFrom < 0)
            report.unprovenFrom = entries[i].record ? entries[i].record!.seq : h.firstSeq + i
        const r = entries[i].record
        if (r !== null && r.kind === KIND_RECYCLE && entries[i].proven) {
            const first = detailNumber(r.detail, "first")
            if (first >= 0 && first <= h.firstSeq) report.lostBefore = first
        }
    }

    let found =
        split.bad >= 0
            ? bad(split.bad, h.firstSeq + split.bad, "removed", "export ends inside this record")
            : null
    const evidence = firstEvidence(entries, h.firstSeq, h.headSeq)
    if (evidence !== null && (found === null || evidence.index <= found.index)) found = evidence
    if (found === null && entries.length < h.count)
        found = bad(entries.length, h.firstSeq + entries.length, "removed", "export truncated")
    if (found === null && entries.length > h.count)
        found = bad(h.count, h.firstSeq + h.count, "forged", "more records than the header")
    if (found === null && h.count > 0 && h.firstSeq + h.count - 1 !== h.headSeq)
        found = bad(-1, h.firstSeq + h.count, "removed", "records missing before the head")
    if (found === null && h.deviceBadSeq !== NO_BAD_SEQ) {
        const at = positionOfSeq(entries, h.deviceBadSeq, -1)
        found = bad(at, h.deviceBadSeq, "device-detected", "the device found its log broken")
    }
    if (found === null) found = deviceFinding(entries)
    if (found === null && report.unprovenFrom >= 0) {
        const at = positionOfSeq(entries, report.unprovenFrom, -1)
        found = bad(at, report.unprovenFrom, "forged", "no signature vouches for this record")
    }
    report.firstBad = found
    report.genuine = found === null
    return report
}
