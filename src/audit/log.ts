/**
 * The tamper-evident audit log (docs/audit-log.md; GP-TM-55): security events appended
 * power-safely to the "audit" partition, chained by SHA-256, each MACed in the secure
 * element with a key that is evolved forward at every signed checkpoint. Opening the log
 * recovers from any power cut: torn frames are skipped, an interrupted key evolution is
 * finished, and what does not verify is itself recorded.
 */

import { Clock } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { FlashPartition } from "../../hal/flash"
import { SE_SLOT_AUDIT, SE_SLOT_IDENTITY, SecureElement } from "../../hal/secure-element"
import { equalBytes } from "../../boot/bytes"
import {
    EVENTS,
    auditMacOrNull,
    checkpointMessage,
    frameHash,
    genesisHash,
    identityKeyOrNull,
    macInput,
    signedDigest,
} from "./chain"
import { ChainFindings, INTEGRITY_OK, Integrity, checkChain } from "./selfcheck"
import { SerialQueue } from "./serial"
import { LogSnapshot } from "./snapshot"
import {
    RingGeometry,
    SectorInfo,
    nextSector,
    padFrame,
    readSector,
    ringGeometry,
    scanRing,
    scanSector,
    sectorErased,
} from "./flash-ring"
import {
    AuditEntry,
    AuditRecord,
    KIND_CHECKPOINT,
    KIND_EVENT,
    KIND_RECYCLE,
    OUTCOMES,
    SIGNATURE_LENGTH,
    encodeBody,
    isEventName,
    sealFrame,
    uintText,
} from "./record"
import { CheckError } from "../../hal/errors"

export const PARTITION_AUDIT = "audit"
/** Records per key epoch before a signed checkpoint closes it and the key evolves. */
export const DEFAULT_EPOCH_RECORDS = 16

/**
 * Checks: "geometry" (partition too small), "entry" (an event name or outcome outside the
 * vocabulary), "closed" (a write failed; reopen the log after the reboot).
 */
export class AuditError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "AuditError"
    }
}

export interface AuditDeps {
    partition: FlashPartition
    secureElement: SecureElement
    crypto: Crypto
    clock: Clock
}

export interface AuditLogOptions {
    epochRecords?: number
}

export interface LogHead {
    seq: number
    hash: Buffer
}

/** Visits one stored record; the frame is exactly what the chain hashes. */
export type RecordVisitor = (record: AuditRecord) => Promise<void>

export class AuditLog {
    private readonly infos: (SectorInfo | null)[] = []
    private headSector = 0
    private writePos = 0
    private head: LogHead | null = null
    private keyEpoch = 0
    private openCount = 0
    private recycleFirst = 0
    private liveFrom = 0
    private integrityState: Integrity = INTEGRITY_OK
    private closed = false
    private readonly queue = new SerialQueue()
    private readonly epochRecords: number
    private snapshots: LogSnapshot[] = []

    private constructor(
        private readonly deps: AuditDeps,
        private readonly geometry: RingGeometry,
        options: AuditLogOptions
    ) {
        this.epochRecords =
            options.epochRecords !== undefined ? options.epochRecords : DEFAULT_EPOCH_RECORDS
    }

    /**
     * Mounts the log: scans every sector, finds the head, finishes an interrupted key
     * evolution, checks the chain and the open epoch's MACs, and records what failed.
     */
    static async open(deps: AuditDeps, options?: AuditLogOptions): Promise<AuditLog> {
        const geometry = ringGeometry(deps.partition)
        if (geometry === null)
            throw new AuditError("geometry", "audit partition needs 2 sectors of 1 KiB or more")
        const log = new AuditLog(deps, geometry, options ? options : {})
        await log.mount()
        return log
    }

    /** The newest record's sequence number and hash, or null for an empty log. */
    headInfo(): LogHead | null {
        return this.head
    }

    /** The result of the last self-check (mount or `verifyStored`). */
    integrity(): Integrity {
        return this.integrityState
    }

    /** The oldest sequence number still stored (after recycling). */
    firstSeq(): number {
        let first = -1
        for (let i = 0; i < this.infos.length; i++) {
            const info = this.infos[i]
            if (info && info.count > 0 && (first < 0 || info.firstSeq < first))
                first = info.firstSeq
        }
        if (first < 0) return this.head ? this.head.seq + 1 : 0
        return first < this.liveFrom ? this.liveFrom : first
    }

    /**
     * Appends one record and resolves with its sequence number once it is on flash.
     * Appends are serialised; a failed write closes the log (reopen it after a reboot).
     */
    async append(entry: AuditEntry): Promise<number> {
        const self = this
        return await this.queue.run(async () => await self.appendNow(entry))
    }

    /** Closes the current key epoch now with a signed checkpoint. */
    async checkpoint(): Promise<number> {
        const self = this
        return await this.queue.run(async () => await self.checkpointNow())
    }

    /** Visits the stored records from `fromSeq` on, oldest first. */
    async forEach(fromSeq: number, visit: RecordVisitor): Promise<void> {
        const from = fromSeq > this.liveFrom ? fromSeq : this.liveFrom
        await this.eachFrame(async (record) => {
            if (record.seq >= from) await visit(record)
        })
    }

    /**
     * Fixes the records from `fromSeq` (or the oldest kept) to the current head for one
     * reader: appends go on meanwhile, and a sector recycled before the reader is done is
     * copied first. Hand it back with `release` (LogSnapshot, src/audit/snapshot.ts).
     */
    snapshot(fromSeq: number): LogSnapshot {
        const first = Math.max(fromSeq, this.firstSeq())
        const head = this.head === null ? null : { seq: this.head.seq, hash: this.head.hash }
        const snap = new LogSnapshot(this.deps.partition, this.geometry, this.liveOrder(), first,
            head)
        this.snapshots.push(snap)
        return snap
    }

    /** Ends a snapshot: the log stops keeping sector copies for it. */
    release(snap: LogSnapshot): void {
        const left: LogSnapshot[] = []
        for (let i = 0; i < this.snapshots.length; i++)
            if (this.snapshots[i] !== snap) left.push(this.snapshots[i])
        this.snapshots = left
    }

    /**
     * Re-checks the stored log: the chain, checkpoint signatures against the device's own
     * identity key, and the open epoch's MACs. Records a new finding once.
     */
    async verifyStored(): Promise<Integrity> {
        const self = this
        await this.queue.run(async () => {
            await self.selfCheck(true)
            return 0
        })
        return this.integrityState
    }

    private async eachFrame(visit: (record: AuditRecord, sector: number) => Promise<void>) {
        const order = this.liveOrder()
        for (let i = 0; i < order.length; i++) {
            const sector = order[i]
            const buf = await readSector(this.deps.partition, this.geometry, sector)
            await scanSector(buf, this.geometry.align, async (record) => {
                await visit(record, sector)
            })
        }
    }

    private async mount(): Promise<void> {
        const ring = await scanRing(this.deps.partition, this.geometry)
        for (let i = 0; i < ring.infos.length; i++) this.infos.push(ring.infos[i])
        this.headSector = ring.headSector
        const headInfo = this.infos[this.headSector]
        this.writePos = headInfo ? Math.max(headInfo.end, headInfo.dirtyEnd) : 0

        const top = ring.head
        if (top !== null) {
            this.head = { seq: top.seq, hash: frameHash(this.deps.crypto, top.frame) }
            this.keyEpoch = top.epoch
            if (top.kind === KIND_CHECKPOINT) {
                this.keyEpoch = top.epoch + 1
                // A cut between writing a checkpoint and evolving the key: finish it.
                const mac = await this.macOrNull(top.body)
                if (mac !== null && equalBytes(mac, top.mac))
                    await this.deps.secureElement.evolveSecret(SE_SLOT_AUDIT)
            }
        }
        await this.selfCheck(false)
    }

    /** The sector the next rollover erases, when the head sector cannot take a full frame. */
    private recycleTarget(): number {
        const next = nextSector(this.geometry, this.headSector)
        if (next === this.headSector) return -1
        if (this.geometry.sectorSize - this.writePos >= this.geometry.maxAligned) return -1
        return next
    }

    /** Sectors holding live records, oldest first, ending with the head sector. */
    private liveOrder(): number[] {
        const order: number[] = []
        let s = this.headSector
        for (let i = 0; i < this.geometry.sectors; i++) {
            s = nextSector(this.geometry, s)
            const info = this.infos[s]
            if (info && info.count > 0) order.push(s)
        }
        return order
    }

    private async selfCheck(checkSignatures: boolean): Promise<void> {
        const self = this
        const identity = checkSignatures ? await this.identityKeyOrNull() : null
        const crypto = this.deps.crypto
        const se = this.deps.secureElement
        let checkpointValid: ((record: AuditRecord) => Promise<boolean>) | null = null
        if (identity !== null) {
            checkpointValid = async (record: AuditRecord) => {
                if (record.signature.length === 0) return false
                const digest = signedDigest(crypto, checkpointMessage(record.body, record.mac))
                return await se.verifyDigest(identity, digest, record.signature)
            }
        }
        const found = await checkChain(
            async (visit) => {
                await self.eachFrame(visit)
            },
            {
                crypto: crypto,
                recycleTarget: this.recycleTarget(),
                keyEpoch: this.keyEpoch,
                macOf: async (body: Buffer) => await self.macOrNull(body),
                checkpointValid: checkpointValid,
            }
        )
        this.recycleFirst = found.recycleFirst
        this.openCount = found.openCount
        this.integrityState = found.problem
        if (found.liveFrom > this.liveFrom) this.liveFrom = found.liveFrom
        await this.recordFindings(found)
    }

    /** Appends what the self-check found, once, and makes sure an audit key exists. */
    private async recordFindings(found: ChainFindings): Promise<void> {
        if (found.keyLost) {
            await this.deps.secureElement.generateSecret(SE_SLOT_AUDIT)
            await this.appendNow({
                event: EVENTS.keyLost,
                actor: "device",
                outcome: "failure",
                detail: "epoch=" + uintText(this.keyEpoch),
            })
            await this.checkpointNow()
        }
        if (!found.problem.ok) {
            const p = found.problem
            const detail = "seq=" + uintText(p.firstBadSeq) + " reason=" + p.reason
            if (detail !== found.lastIntegrityDetail) {
                await this.appendNow({
                    event: EVENTS.integrity,
                    actor: "device",
                    outcome: "failure",
                    detail: detail,
                })
                // Close the epoch so a MAC finding is reported once, not at every boot.
                await this.checkpointNow()
            }
        }
        // A fresh device (or one whose audit key was wiped) gets its secret now.
        if ((await this.macOrNull(Buffer.alloc(0))) === null)
            await this.deps.secureElement.generateSecret(SE_SLOT_AUDIT)
    }

    private async identityKeyOrNull(): Promise<Buffer | null> {
        return await identityKeyOrNull(this.deps.secureElement)
    }

    private async macOrNull(body: Buffer): Promise<Buffer | null> {
        return await auditMacOrNull(this.deps.secureElement, body)
    }

    private async appendNow(entry: AuditEntry): Promise<number> {
        if (!isEventName(entry.event) || OUTCOMES.indexOf(entry.outcome) < 0)
            throw new AuditError("entry", "event name or outcome not in the vocabulary")
        const seq = await this.writeRecord(KIND_EVENT, entry)
        if (this.openCount >= this.epochRecords) await this.checkpointNow()
        return seq
    }

    private async checkpointNow(): Promise<number> {
        const seq = await this.writeRecord(KIND_CHECKPOINT, {
            event: EVENTS.checkpoint,
            actor: "device",
            outcome: "info",
            detail: "records=" + uintText(this.openCount),
        })
        await this.deps.secureElement.evolveSecret(SE_SLOT_AUDIT)
        this.keyEpoch++
        this.openCount = 0
        return seq
    }

    /** Makes room, then builds, MACs (a checkpoint also signs) and programs one frame. */
    private async writeRecord(kind: number, entry: AuditEntry): Promise<number> {
        if (this.closed) throw new AuditError("closed", "audit log closed after a failed write")
        try {
            await this.makeRoom()
            return await this.program(kind, entry)
        } catch (e) {
            this.closed = true
            throw e
        }
    }

    private async program(kind: number, entry: AuditEntry): Promise<number> {
        const se = this.deps.secureElement
        const seq = this.head ? this.head.seq + 1 : 0
        // Not provisioned yet: a checkpoint is stored unsigned and anchors nothing.
        const signed = kind === KIND_CHECKPOINT && (await this.identityKeyOrNull()) !== null
        const body = encodeBody({
            kind: kind,
            signatureLength: signed ? SIGNATURE_LENGTH : 0,
            seq: seq,
            epoch: this.keyEpoch,
            time: this.deps.clock.wallTime(),
            uptimeMs: this.deps.clock.monotonicMs(),
            prevHash: this.head ? this.head.hash : genesisHash(),
            entry: entry,
        })
        const mac = await se.hmac(SE_SLOT_AUDIT, macInput(body))
        let signature: Buffer = Buffer.alloc(0)
        if (signed) {
            const digest = signedDigest(this.deps.crypto, checkpointMessage(body, mac))
            signature = await se.signDigest(SE_SLOT_IDENTITY, digest)
        }
        const frame = sealFrame(body, mac, signature)
        const padded = padFrame(frame, this.geometry.align)
        const offset = this.headSector * this.geometry.sectorSize + this.writePos
        await this.deps.partition.program(offset, padded)

        this.head = { seq: seq, hash: frameHash(this.deps.crypto, frame) }
        this.writePos += padded.length
        const info = this.infos[this.headSector]
        if (info && info.count > 0) {
            info.lastSeq = seq
            info.count++
            info.end = this.writePos
        } else {
            this.infos[this.headSector] = {
                count: 1,
                firstSeq: seq,
                lastSeq: seq,
                end: this.writePos,
                dirtyEnd: this.writePos,
            }
        }
        if (kind !== KIND_CHECKPOINT) this.openCount++
        return seq
    }

    /**
     * Moves to the next sector when a full frame may not fit: erases it if anything is
     * programmed there (the oldest records), then states how many records are gone.
     */
    private async makeRoom(): Promise<void> {
        const g = this.geometry
        if (g.sectorSize - this.writePos >= g.maxAligned) return
        const target = nextSector(g, this.headSector)
        this.infos[target] = null
        const buf = await readSector(this.deps.partition, g, target)
        for (let i = 0; i < this.snapshots.length; i++) this.snapshots[i].keep(target, buf)
        if (!sectorErased(buf)) await this.deps.partition.erase(target * g.sectorSize, g.sectorSize)
        this.headSector = target
        this.writePos = 0
        const first = this.firstSeq()
        if (first > this.recycleFirst) {
            const lost = first - this.recycleFirst
            this.recycleFirst = first
            await this.program(KIND_RECYCLE, {
                event: EVENTS.recycle,
                actor: "device",
                outcome: "info",
                detail: "first=" + uintText(first) + " lost=" + uintText(lost),
            })
        }
    }
}
