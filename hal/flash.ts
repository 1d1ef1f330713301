/**
 * Flash contract: named partitions of NOR flash (DESIGN.md section 3).
 * Erase works on whole sectors and sets them to 0xFF; program only clears bits, only at
 * `writeAlign`-aligned offsets and lengths, and only into cells that are still erased
 * (programming a cell twice is a FlashError "not-erased", as on real parts).
 * Any operation may end in PowerLoss when power is cut; a cut program or erase can leave
 * its range torn (a prefix done, the rest erased or garbage).
 */

export interface FlashPartition {
    readonly name: string
    /** Size in bytes, a whole number of sectors. */
    readonly size: number
    /** Erase unit in bytes. */
    readonly sectorSize: number
    /** Program unit in bytes: offsets and lengths of `program` are multiples of it. */
    readonly writeAlign: number

    /** Reads `length` bytes at `offset`; FlashError "range" outside the partition. */
    read(offset: number, length: number): Promise<Buffer>
    /** Erases the sectors covering [offset, offset+length); both must be sector-aligned. */
    erase(offset: number, length: number): Promise<void>
    /** Programs `data` at `offset`; FlashError "align", "range" or "not-erased". */
    program(offset: number, data: Buffer): Promise<void>
}

export interface Flash {
    /** Names of the partitions of the partition table, in table order. */
    partitionNames(): string[]
    /** The named partition; FlashError "partition" when the table has none by that name. */
    partition(name: string): FlashPartition
}

/** Partition names the firmware relies on; the device profile's table must define them. */
export const PARTITION_BOOT_STATE = "boot-state"
export const PARTITION_SLOT_A = "slot-a"
export const PARTITION_SLOT_B = "slot-b"
