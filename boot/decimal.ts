/**
 * Exact decimal text of unsigned integers for portable code (DESIGN.md section 4):
 * DeviceScript prints numbers past about seven digits lossily, so versions, times and
 * counters are written and read digit by digit here, once, for every format that needs it.
 */

/** The decimal digits of `value`, a non-negative integer below 2^53 (callers check). */
export function decimalDigits(value: number): string {
    if (value === 0) return "0"
    let out = ""
    let rest = value
    while (rest > 0) {
        const next = Math.floor(rest / 10)
        out = String.fromCharCode(0x30 + (rest - next * 10)) + out
        rest = next
    }
    return out
}

/**
 * The value of 1 to `maxDigits` decimal digits, no sign and no leading zero, up to `max`;
 * -1 for any other text.
 */
export function parseDecimal(text: string, maxDigits: number, max: number): number {
    if (text.length < 1 || text.length > maxDigits) return -1
    if (text.length > 1 && text.charCodeAt(0) === 0x30) return -1
    let value = 0
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c < 0x30 || c > 0x39) return -1
        value = value * 10 + (c - 0x30)
    }
    return value <= max ? value : -1
}
