/**
 * Preferences store (docs/privacy.md, "Storage"; GP-TM-20, GP-TM-12): a small power-safe
 * key-value record on the "prefs" partition, for owner preferences, consent and personal
 * data. Two copies, each half the partition; a write goes to the copy that does not hold the
 * newest record, then the older copy is erased, so a torn write loses only that change and
 * no superseded value stays readable in flash. Updates and the boot stub never write here.
 * Sealed (GP-TM-31): each record also carries a MAC by the secure element (privacy/seal.ts).
 */

import { equalBytes } from "../boot/bytes"
import { Crypto } from "../hal/crypto"
import { FlashPartition } from "../hal/flash"
import { PrefsSeal, SEAL_LENGTH, TAMPER_EVENT, sealElement } from "./privacy/seal"
import { CheckError } from "../hal/errors"
import { SecureElement } from "../hal/secure-element"
import {
    DIGEST_LENGTH,
    HEADER_LENGTH,
    checkValues,
    encodePrefsRecord,
    encodeSealedRecord,
    isPrefsKey,
    readCopy,
} from "./privacy/prefs-record"

export {
    MAX_KEY_LENGTH,
    encodePrefsRecord,
    encodeSealedRecord,
    isPrefsKey,
} from "./privacy/prefs-record"

export const PARTITION_PREFS = "prefs"

/**
 * Checks: "partition" (fewer than two sectors), "key" (not a key name), "value" (not a
 * string), "full" (the record would not fit one copy), "busy" (another write in flight).
 */
export class PrefsError extends CheckError {
    constructor(check: string, message: string) {
        super(check, "prefs: " + check + ": " + message)
        this.name = "PrefsError"
    }
}

/** A batch of changes: a string sets the key, null removes it. */
export type PrefsChanges = { [key: string]: string | null }

/**
 * What users of a prefs store rely on. PrefsStore keeps it on a flash partition; a board
 * without raw flash (DeviceScript) would provide another implementation with the same
 * promise: each write is all or nothing across a power cut.
 */
export interface Prefs {
    get(key: string): string | null
    keys(): string[]
    set(key: string, value: string): Promise<void>
    remove(key: string): Promise<void>
    /** Every change in one write: a string sets the key, null removes it. */
    update(changes: PrefsChanges): Promise<void>
    /** Replaces the whole content, leaving nothing of what it removes readable. */
    replaceAll(values: { [key: string]: string }): Promise<void>
}

/** Bytes of one copy: half the partition's sectors. */
function copySize(p: FlashPartition): number {
    const sectors = Math.floor(p.size / p.sectorSize)
    if (sectors < 2) throw new PrefsError("partition", "needs at least two sectors")
    return Math.floor(sectors / 2) * p.sectorSize
}

/**
 * The store. `open` reads both copies, keeps the newest whole record and erases the other
 * copy if anything is left in it (a superseded record or a torn write), so a change that
 * a power cut interrupted after it was committed is finished at the next start. Sealed,
 * a copy whose MAC fails is refused like a torn one, erased, and reported.
 *
 *     const seal = { secureElement: board.secureElement, onTamper: auditSink }
 *     const prefs = await PrefsStore.open(flash.partition(PARTITION_PREFS), crypto, seal)
 *     await prefs.update({ "pref.unit": "celsius", "pref.old": null })   // atomic
 *     prefs.get("pref.unit")                                              // "celsius"
 */
export class PrefsStore implements Prefs {
    private values: { [key: string]: string } = {}
    private seq = 0
    /** Index of the copy holding the newest record, -1 when both are empty. */
    private current = -1
    private readonly size: number
    /** A write is in progress: a second writer meanwhile is refused ("busy"). */
    private writing = false

    /** SHA-256 of an erased sector: `scrub` compares digests, not 4 KiB byte by byte. */
    private readonly blankDigest: Buffer
    private readonly findings: string[] = []

    private constructor(
        private readonly p: FlashPartition,
        private readonly crypto: Crypto,
        private readonly se: SecureElement | null
    ) {
        this.size = copySize(p)
        const blank = Buffer.alloc(p.sectorSize)
        for (let i = 0; i < blank.length; i++) blank[i] = 0xff
        this.blankDigest = crypto.sha256([blank])
    }

    /**
     * Opens the store on `partition` (PARTITION_PREFS); PrefsError "partition" if too small.
     * With `seal` the records are sealed (version 2) and UnsupportedError is thrown on a
     * board without a secure element. Without it the store reads and writes the unsealed
     * version 1, which nothing authenticates: kept only for callers not yet passing a seal
     * (docs/limits.md).
     */
    static async open(
        partition: FlashPartition,
        crypto: Crypto,
        seal?: PrefsSeal
    ): Promise<PrefsStore> {
        const se = seal !== undefined ? sealElement(seal) : null
        const store = new PrefsStore(partition, crypto, se)
        await store.load()
        const report = seal !== undefined ? seal.onTamper : undefined
        if (report !== undefined)
            for (let i = 0; i < store.findings.length; i++)
                await report(TAMPER_EVENT, "device", "failure", store.findings[i])
        return store
    }

    /**
     * The copies refused at open ("store=prefs copy=N reason=mac|unsealed"): whole records
     * the secure element did not seal. They were erased like torn copies.
     */
    tamperFindings(): string[] {
        return this.findings.slice(0)
    }

    /** True when records carry the secure element's MAC. */
    isSealed(): boolean {
        return this.se !== null
    }

    /** The value of `key`, or null. */
    get(key: string): string | null {
        const v = this.values[key]
        return typeof v === "string" ? v : null
    }

    /** Every key held, in stored order. */
    keys(): string[] {
        return Object.keys(this.values)
    }

    /** A copy of every key and value held. */
    snapshot(): { [key: string]: string } {
        const out: { [key: string]: string } = {}
        const keys = Object.keys(this.values)
        for (let i = 0; i < keys.length; i++) out[keys[i]] = this.values[keys[i]]
        return out
    }

    /** Bytes of JSON body one copy can hold. */
    capacity(): number {
        return this.size - HEADER_LENGTH - DIGEST_LENGTH - (this.se !== null ? SEAL_LENGTH : 0)
    }

    async set(key: string, value: string): Promise<void> {
        const changes: PrefsChanges = {}
        changes[key] = value
        await this.update(changes)
    }

    async remove(key: string): Promise<void> {
        const changes: PrefsChanges = {}
        changes[key] = null
        await this.update(changes)
    }

    /** Applies every change of `changes` in one power-safe write: all of them or none. */
    async update(changes: PrefsChanges): Promise<void> {
        await this.commit(this.applied(changes))
    }

    /**
     * Replaces the whole content with `values` (an erasure keeps only what it names), in one
     * power-safe write after which no removed value is left anywhere in the partition.
     */
    async replaceAll(values: { [key: string]: string }): Promise<void> {
        const next = checkValues(values)
        if (next === null) throw new PrefsError("key", "not a key name or not a string")
        await this.commit(next)
    }

    /** The content after `changes`; PrefsError "key" or "value" for a bad change. */
    private applied(changes: PrefsChanges): { [key: string]: string } {
        const keys = Object.keys(changes)
        for (let i = 0; i < keys.length; i++) {
            if (!isPrefsKey(keys[i])) throw new PrefsError("key", "not a key name")
            const value = changes[keys[i]]
            if (value !== null && typeof value !== "string")
                throw new PrefsError("value", "must be a string or null")
        }

        // Built afresh (no `delete`): the kept keys in their order, then the changed ones.
        const next: { [key: string]: string } = {}
        const held = Object.keys(this.values)
        for (let i = 0; i < held.length; i++)
            if (keys.indexOf(held[i]) < 0) next[held[i]] = this.values[held[i]]
        for (let i = 0; i < keys.length; i++) {
            const value = changes[keys[i]]
            if (typeof value === "string") next[keys[i]] = value
        }
        return next
    }

    private async load(): Promise<void> {
        const readA = await readCopy(this.crypto, this.se, this.p, 0, this.size)
        const readB = await readCopy(this.crypto, this.se, this.p, this.size, this.size)
        const reads = [readA, readB]
        for (let i = 0; i < reads.length; i++)
            if (reads[i].refused !== "")
                this.findings.push("store=prefs copy=" + (i === 0 ? "0" : "1") + " reason=" +
                    reads[i].refused)
        const a = readA.copy
        const b = readB.copy
        let pick = -1
        if (a !== null && (b === null || a.seq >= b.seq)) pick = 0
        else if (b !== null) pick = 1
        const copy = pick === 0 ? a : b
        if (copy !== null) {
            this.values = copy.values
            this.seq = copy.seq
        }
        this.current = pick
        await this.scrub(pick === 0 ? 1 : 0)
        if (pick < 0) await this.scrub(1)
    }

    /** Erases copy `index` unless it is already blank. */
    private async scrub(index: number): Promise<void> {
        const offset = index * this.size
        let blank = true
        for (let at = 0; at < this.size && blank; at += this.p.sectorSize)
            blank = equalBytes(
                this.crypto.sha256([await this.p.read(offset + at, this.p.sectorSize)]),
                this.blankDigest
            )
        if (!blank) await this.p.erase(offset, this.size)
    }

    /**
     * Writes `next` as the new record. One writer at a time: the store has no clock to wait
     * on, so a write that starts while another is in flight (two fibers) is refused "busy";
     * callers that share the store serialise their writes (the privacy manager does).
     */
    private async commit(next: { [key: string]: string }): Promise<void> {
        if (this.writing) throw new PrefsError("busy", "another write is in progress")
        this.writing = true
        try {
            const align = this.p.writeAlign
            const record =
                this.se !== null
                    ? await encodeSealedRecord(this.crypto, this.se, next, this.seq + 1, align)
                    : encodePrefsRecord(this.crypto, next, this.seq + 1, align)
            if (record.length > this.size)
                throw new PrefsError("full", "record larger than a copy")
            const target = this.current === 0 ? 1 : 0
            await this.scrub(target)
            await this.p.program(target * this.size, record)

            // Committed: the new record is whole. Then the superseded one goes.
            this.values = next
            this.seq = this.seq + 1
            const old = this.current
            this.current = target
            if (old >= 0) await this.p.erase(old * this.size, this.size)
        } finally {
            this.writing = false
        }
    }
}
