/**
 * Byte helpers for portable code (DESIGN.md section 4): DeviceScript's Buffer reads are
 * little-endian and its readUInt32BE comes back signed, so big-endian fields are assembled
 * by hand here, once, and every format in the firmware uses these.
 */

/** Reads an unsigned 16-bit big-endian value. */
export function readU16(buf: Buffer, offset: number): number {
    return buf[offset] * 0x100 + buf[offset + 1]
}

/** Reads an unsigned 32-bit big-endian value as a non-negative number. */
export function readU32(buf: Buffer, offset: number): number {
    return (
        buf[offset] * 0x1000000 +
        buf[offset + 1] * 0x10000 +
        buf[offset + 2] * 0x100 +
        buf[offset + 3]
    )
}

export function writeU16(buf: Buffer, offset: number, value: number): void {
    buf[offset] = Math.floor(value / 0x100) & 0xff
    buf[offset + 1] = value & 0xff
}

/** Writes an unsigned 32-bit big-endian value; `value` must be in [0, 2^32). */
export function writeU32(buf: Buffer, offset: number, value: number): void {
    buf[offset] = Math.floor(value / 0x1000000) & 0xff
    buf[offset + 1] = Math.floor(value / 0x10000) & 0xff
    buf[offset + 2] = Math.floor(value / 0x100) & 0xff
    buf[offset + 3] = value & 0xff
}

export function u16(value: number): Buffer {
    const out = Buffer.alloc(2)
    writeU16(out, 0, value)
    return out
}

export function u32(value: number): Buffer {
    const out = Buffer.alloc(4)
    writeU32(out, 0, value)
    return out
}

/**
 * Compares two buffers in time that depends only on their lengths: every byte is visited
 * and differences are accumulated, so a mismatch position does not leak through timing.
 */
export function equalBytes(a: Buffer, b: Buffer): boolean {
    if (a.length !== b.length) return false
    let diff = 0
    for (let i = 0; i < a.length; i++) diff = diff | (a[i] ^ b[i])
    return diff === 0
}

/** True when every byte is 0xff (erased NOR flash). */
export function isErased(buf: Buffer): boolean {
    for (let i = 0; i < buf.length; i++) if (buf[i] !== 0xff) return false
    return true
}

/** True when bytes [start, end) of `buf` are all zero (reserved fields of a format). */
export function allZero(buf: Buffer, start: number, end: number): boolean {
    for (let i = start; i < end; i++) if (buf[i] !== 0) return false
    return true
}

/** True when `value` is lower-case hex text of exactly `bytes` bytes. */
export function isHexText(value: unknown, bytes: number): boolean {
    if (typeof value !== "string" || value.length !== bytes * 2) return false
    for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false
    }
    return true
}

export function toHex(buf: Buffer): string {
    return buf.toString("hex")
}

/** Integer in [0, 2^53) check without `%` (a 32-bit operation on DeviceScript). */
export function isUint(value: unknown, max: number): boolean {
    if (typeof value !== "number") return false
    if (value < 0 || value > max) return false
    return Math.floor(value) === value
}

/** Rounds `value` up to a multiple of `unit` without `%`. */
export function alignUp(value: number, unit: number): number {
    return Math.ceil(value / unit) * unit
}

/**
 * Concatenates buffers. Portable code uses this, never Buffer.concat: Node's takes a list
 * and DeviceScript's takes separate arguments, so neither call compiles on both targets.
 */
export function concatBytes(parts: Buffer[]): Buffer {
    let total = 0
    for (let i = 0; i < parts.length; i++) total = total + parts[i].length
    const out = Buffer.alloc(total)
    let pos = 0
    for (let i = 0; i < parts.length; i++) {
        const part = parts[i]
        for (let j = 0; j < part.length; j++) out[pos + j] = part[j]
        pos = pos + part.length
    }
    return out
}
