/**
 * Progress display of `bulwark ota publish` (docs/update.md): one bar per device on stderr,
 * redrawn in place on a terminal, one line per change of state otherwise (CI logs).
 */

import { DeviceProgress } from "./publisher"

const WIDTH = 24

export function progressLine(p: DeviceProgress): string {
    const fraction = p.size > 0 ? Math.min(1, p.offset / p.size) : 0
    const filled = Math.round(fraction * WIDTH)
    const bar = "#".repeat(filled) + ".".repeat(WIDTH - filled)
    const pct = String(Math.floor(fraction * 100)).padStart(3)
    const detail = p.check ? " (" + p.check + ")" : ""
    const rejected = p.rejectedStatuses > 0
        ? ` [${p.rejectedStatuses} status${p.rejectedStatuses === 1 ? "" : "es"} rejected: ${p.lastRejected}]`
        : ""
    return `${p.deviceId.padEnd(18)} [${bar}] ${pct}% ${p.state}${detail}${rejected}`
}

/** Draws bars for `devices` on `out`; `update` takes each progress report. */
export class ProgressBars {
    private readonly lines = new Map<string, DeviceProgress>()
    private readonly lastState = new Map<string, string>()
    private drawn = 0

    constructor(
        private readonly out: NodeJS.WriteStream,
        devices: string[],
        size: number
    ) {
        for (const id of devices)
            this.lines.set(id, {
                deviceId: id,
                state: "pending",
                offset: 0,
                size: size,
                served: 0,
                running: null,
                check: null,
                rejectedStatuses: 0,
                lastRejected: null,
                statusAuth: "signed",
            })
        if (this.out.isTTY) this.redraw()
    }

    update(p: DeviceProgress): void {
        this.lines.set(p.deviceId, p)
        if (this.out.isTTY) return this.redraw()
        const key = p.state + (p.check ?? "") + "/" + p.rejectedStatuses
        if (this.lastState.get(p.deviceId) === key) return
        this.lastState.set(p.deviceId, key)
        this.out.write(progressLine(p) + "\n")
    }

    private redraw(): void {
        if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A`)
        for (const p of this.lines.values()) this.out.write("\x1b[2K" + progressLine(p) + "\n")
        this.drawn = this.lines.size
    }
}
