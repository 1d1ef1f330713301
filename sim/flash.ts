/**
 * Simulated NOR flash (DESIGN.md section 3, hal/flash.ts): sector erase to 0xFF, aligned
 * programs that only clear bits and refuse cells that are not erased, persisted write-through
 * to DEV/flash.bin. Counts every program and erase and can cut power at the Nth one, tearing
 * the interrupted operation, for the power-loss tests of GP-TM-06 and GP-TM-16.
 */

import { closeSync, fstatSync, openSync, readSync, writeFileSync, writeSync } from "node:fs"
import { FlashError, PowerLoss } from "../hal/errors"
import { Flash, FlashPartition } from "../hal/flash"
import { PowerRail } from "./power"
import { SeededRandom } from "./rng"

/** How an interrupted program or erase leaves its range (see armPowerCut). */
export type TearMode = "none" | "prefix" | "garbage"

export interface FlashLayout {
    sectorSize: number
    writeAlign: number
    /** Laid out in this order from offset 0. */
    partitions: { name: string; size: number }[]
}

/** What the last injected cut interrupted, for messages of failing fault tests. */
export interface CutRecord {
    op: "program" | "erase"
    partition: string
    offset: number
    length: number
    tear: TearMode
    seed: number
}

function totalSize(layout: FlashLayout): number {
    let size = 0
    for (const p of layout.partitions) size += p.size
    return size
}

function isAllErased(buf: Buffer): boolean {
    for (let i = 0; i < buf.length; i++) if (buf[i] !== 0xff) return false
    return true
}

function checkRange(offset: number, length: number, size: number, what: string): void {
    const ok =
        Number.isInteger(offset) &&
        Number.isInteger(length) &&
        offset >= 0 &&
        length >= 0 &&
        offset + length <= size
    if (!ok) throw new FlashError("range", what + ": [" + offset + ", +" + length + ") outside")
}

class SimPartition implements FlashPartition {
    constructor(
        private readonly chip: SimFlash,
        readonly name: string,
        readonly base: number,
        readonly size: number,
        readonly sectorSize: number,
        readonly writeAlign: number
    ) {}

    async read(offset: number, length: number): Promise<Buffer> {
        this.chip.powerCheck()
        checkRange(offset, length, this.size, this.name)
        return this.chip.readCells(this.base + offset, length)
    }

    async erase(offset: number, length: number): Promise<void> {
        this.chip.powerCheck()
        checkRange(offset, length, this.size, this.name)
        if (offset % this.sectorSize !== 0 || length % this.sectorSize !== 0)
            throw new FlashError("align", this.name + ": erase must cover whole sectors")
        if (length === 0) return
        this.chip.eraseCells(this, offset, length)
    }

    async program(offset: number, data: Buffer): Promise<void> {
        this.chip.powerCheck()
        if (!Buffer.isBuffer(data))
            throw new FlashError("range", this.name + ": data must be bytes")
        checkRange(offset, data.length, this.size, this.name)
        if (offset % this.writeAlign !== 0 || data.length % this.writeAlign !== 0)
            throw new FlashError("align", this.name + ": program must be write-aligned")
        if (data.length === 0) return
        if (!isAllErased(this.chip.view(this.base + offset, data.length)))
            throw new FlashError("not-erased", this.name + ": program into cells not erased")
        this.chip.programCells(this, offset, data)
    }
}

export interface SimFlashOptions {
    /** Seed of the tear generator when armPowerCut is given none. */
    seed?: number
    /** Called once when an injected cut takes the power away (the board records it). */
    onPowerLoss?: () => void
}

export class SimFlash implements Flash {
    private readonly mem: Buffer
    private readonly parts: SimPartition[] = []
    private fd: number | null
    private ops = 0
    private cutAfter: number | null = null
    private tear: TearMode = "prefix"
    private tearSeed: number
    private random: SeededRandom
    private lastCutRecord: CutRecord | null = null

    /** Writes a blank (all 0xFF) chip image for `layout` to `path`. */
    static createFile(path: string, layout: FlashLayout): void {
        writeFileSync(path, Buffer.alloc(totalSize(layout), 0xff), { flag: "wx" })
    }

    /**
     * Opens the chip image at `path`. FlashError "io" when the file is missing or its size
     * does not match the layout (the board reports that as a corrupt device directory).
     */
    constructor(
        path: string,
        readonly layout: FlashLayout,
        private readonly rail: PowerRail,
        private readonly options: SimFlashOptions = {}
    ) {
        const size = totalSize(layout)
        let fd: number
        try {
            fd = openSync(path, "r+")
        } catch {
            throw new FlashError("io", "flash image missing: " + path)
        }
        if (fstatSync(fd).size !== size) {
            closeSync(fd)
            throw new FlashError("io", "flash image size does not match the partition table")
        }
        this.mem = Buffer.alloc(size)
        readSync(fd, this.mem, 0, size, 0)
        this.fd = fd
        let base = 0
        for (const p of layout.partitions) {
            this.parts.push(
                new SimPartition(this, p.name, base, p.size, layout.sectorSize, layout.writeAlign)
            )
            base += p.size
        }
        this.tearSeed = options.seed ?? 1
        this.random = new SeededRandom(this.tearSeed)
    }

    partitionNames(): string[] {
        return this.parts.map((p) => p.name)
    }

    partition(name: string): FlashPartition {
        const found = this.parts.find((p) => p.name === name)
        if (!found) throw new FlashError("partition", "no partition named " + name)
        return found
    }

    /** Programs and erases done since the board was opened (refused ones do not count). */
    get opCount(): number {
        return this.ops
    }

    /**
     * Cuts power during the (afterOps+1)-th program or erase from now. With tear "none" the
     * interrupted operation changes nothing; "prefix" completes a random-length prefix of it
     * (for an erase: some sectors erased, the one in progress left as garbage); "garbage"
     * scrambles a random sub-range (a program can only clear bits, so it ANDs). The
     * operation then throws PowerLoss and so does every later call until a power cycle.
     */
    armPowerCut(afterOps: number, tear: TearMode = "prefix", seed?: number): void {
        if (!Number.isInteger(afterOps) || afterOps < 0)
            throw new RangeError("afterOps: expected a non-negative integer")
        this.cutAfter = afterOps
        this.tear = tear
        if (seed !== undefined) {
            this.tearSeed = seed
            this.random = new SeededRandom(seed)
        }
    }

    disarmPowerCut(): void {
        this.cutAfter = null
    }

    /** The operation the last injected cut interrupted, or null. */
    lastCut(): CutRecord | null {
        return this.lastCutRecord
    }

    /**
     * Physical read-out of a partition, bypassing the power rail: what a test (or an
     * attacker with the chip in a programmer) sees. Not part of the HAL.
     */
    peek(name: string, offset: number, length: number): Buffer {
        const p = this.partition(name) as SimPartition
        checkRange(offset, length, p.size, name)
        return Buffer.from(this.view(p.base + offset, length))
    }

    /** Releases the file; every later call throws (the board has been powered off). */
    close(): void {
        this.rail.cut()
        if (this.fd !== null) closeSync(this.fd)
        this.fd = null
    }

    powerCheck(): void {
        this.rail.check()
        if (this.fd === null) throw new PowerLoss("flash closed")
    }

    view(offset: number, length: number): Buffer {
        return this.mem.subarray(offset, offset + length)
    }

    readCells(offset: number, length: number): Buffer {
        return Buffer.from(this.view(offset, length))
    }

    /** Erases a checked, sector-aligned range of `part` (offset relative to it). */
    eraseCells(part: SimPartition, offset: number, length: number): void {
        const at = part.base + offset
        if (this.takesCut()) {
            this.tearErase(at, length)
            this.afterCut("erase", part.name, offset, length)
        }
        this.mem.fill(0xff, at, at + length)
        this.persist(at, length)
    }

    /** Programs checked, aligned, erased cells of `part` (offset relative to it). */
    programCells(part: SimPartition, offset: number, data: Buffer): void {
        const at = part.base + offset
        if (this.takesCut()) {
            this.tearProgram(at, data)
            this.afterCut("program", part.name, offset, data.length)
        }
        for (let i = 0; i < data.length; i++) this.mem[at + i] &= data[i]
        this.persist(at, data.length)
    }

    /** Counts the operation; true when it is the one an armed cut interrupts. */
    private takesCut(): boolean {
        this.ops++
        if (this.cutAfter === null) return false
        if (this.cutAfter > 0) {
            this.cutAfter--
            return false
        }
        this.cutAfter = null
        return true
    }

    private tearProgram(offset: number, data: Buffer): void {
        if (this.tear === "prefix") {
            const done = this.random.between(0, data.length)
            for (let i = 0; i < done; i++) this.mem[offset + i] &= data[i]
        } else if (this.tear === "garbage") {
            const [from, to] = this.subRange(data.length)
            const noise = this.random.bytes(to - from)
            for (let i = from; i < to; i++) this.mem[offset + i] &= noise[i - from]
        }
        this.persist(offset, data.length)
    }

    private tearErase(offset: number, length: number): void {
        const sector = this.layout.sectorSize
        if (this.tear === "prefix") {
            const done = this.random.below(length / sector)
            this.mem.fill(0xff, offset, offset + done * sector)
            this.random.bytes(sector).copy(this.mem, offset + done * sector)
        } else if (this.tear === "garbage") {
            const [from, to] = this.subRange(length)
            this.random.bytes(to - from).copy(this.mem, offset + from)
        }
        this.persist(offset, length)
    }

    /** A random non-empty [from, to) inside [0, length). */
    private subRange(length: number): [number, number] {
        const from = this.random.below(length)
        const to = this.random.between(from + 1, length)
        return [from, to]
    }

    private afterCut(
        op: "program" | "erase",
        partition: string,
        offset: number,
        length: number
    ): never {
        this.lastCutRecord = {
            op: op,
            partition: partition,
            offset: offset,
            length: length,
            tear: this.tear,
            seed: this.tearSeed,
        }
        this.rail.cut()
        if (this.options.onPowerLoss) this.options.onPowerLoss()
        throw new PowerLoss("power cut during " + op + " of " + partition)
    }

    private persist(offset: number, length: number): void {
        if (this.fd === null) throw new PowerLoss("flash closed")
        writeSync(this.fd, this.mem, offset, length, offset)
    }
}
