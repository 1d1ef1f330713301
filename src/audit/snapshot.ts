/**
 * A consistent read of the audit log for an export (docs/audit-log.md, "Export";
 * GP-TM-55): the sequence range and head are fixed when the snapshot is taken, records
 * appended later are left out, and a sector the ring recycles while the snapshot is open is
 * copied to RAM before it is erased, so the export streams exactly what its header signs.
 */

import { FlashPartition } from "../../hal/flash"
import { RingGeometry, readSector, scanSector } from "./flash-ring"
import { AuditRecord } from "./record"

/** The newest record when the snapshot was taken. */
export interface SnapshotHead {
    seq: number
    hash: Buffer
}

export class LogSnapshot {
    /** Sector images saved before the ring erased them, by position in `sectors`. */
    private readonly saved: (Buffer | null)[] = []

    /**
     * `sectors`: the live sectors at the time, oldest first; `first`..head.seq: the range.
     * An empty log (head null) holds no record.
     */
    constructor(
        private readonly partition: FlashPartition,
        private readonly geometry: RingGeometry,
        private readonly sectors: number[],
        readonly first: number,
        readonly head: SnapshotHead | null
    ) {
        for (let i = 0; i < sectors.length; i++) this.saved.push(null)
    }

    /** The last sequence number in the snapshot; first - 1 when it holds none. */
    lastSeq(): number {
        return this.head === null ? this.first - 1 : this.head.seq
    }

    /**
     * Called by the log before it erases `sector`, with the image it read: kept when the
     * snapshot still needs that sector (first erase only: that is the snapshot's content).
     */
    keep(sector: number, image: Buffer): void {
        const at = this.sectors.indexOf(sector)
        if (at >= 0 && this.saved[at] === null) this.saved[at] = image
    }

    /** Visits the snapshot's records, oldest first; nothing appended after it was taken. */
    async forEach(visit: (record: AuditRecord) => Promise<void>): Promise<void> {
        const first = this.first
        const last = this.lastSeq()
        if (last < first) return
        for (let i = 0; i < this.sectors.length; i++) {
            let image = this.saved[i]
            if (image === null) {
                const read = await readSector(this.partition, this.geometry, this.sectors[i])
                // Erased while we were reading: the copy kept before the erase is the truth.
                const kept = this.saved[i]
                image = kept !== null ? kept : read
            }
            await scanSector(image, this.geometry.align, async (record) => {
                if (record.seq >= first && record.seq <= last) await visit(record)
            })
        }
    }
}
