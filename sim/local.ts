/**
 * Simulated local interfaces (hal/local.ts): the tamper switch, latched in DEV/tamper.json
 * as a battery-backed tamper circuit would be (GP-TM-31 tamper detection), and the button
 * that proves physical presence, held or released by tests and the sim runner.
 */

import { existsSync } from "node:fs"
import { Button, Tamper } from "../hal/local"
import { PowerRail } from "./power"
import { SimStateError, readJsonObject, writeJsonAtomic } from "./store"

export class SimTamper implements Tamper {
    private latched: boolean

    /** Reads the latch; a device directory without the file has never been opened. */
    constructor(
        private readonly path: string,
        private readonly rail: PowerRail
    ) {
        if (!existsSync(path)) {
            this.latched = false
            return
        }
        const raw = readJsonObject(path)
        if (typeof raw.triggered !== "boolean")
            throw new SimStateError("corrupt", path, "tamper state: triggered")
        this.latched = raw.triggered
    }

    async triggered(): Promise<boolean> {
        this.rail.check()
        return this.latched
    }

    /** Opens the enclosure (test and runner control, not a HAL call). */
    trigger(): void {
        this.store(true)
    }

    /** Re-arms the switch, as a technician closing the enclosure would. */
    clear(): void {
        this.store(false)
    }

    private store(value: boolean): void {
        writeJsonAtomic(this.path, { triggered: value })
        this.latched = value
    }
}

export class SimButton implements Button {
    private pressed: boolean

    constructor(
        private readonly rail: PowerRail,
        initiallyHeld = false
    ) {
        this.pressed = initiallyHeld
    }

    async held(): Promise<boolean> {
        this.rail.check()
        return this.pressed
    }

    /** True while held; readable after the run ended (powerCycle carries it over). */
    isHeld(): boolean {
        return this.pressed
    }

    press(): void {
        this.pressed = true
    }

    release(): void {
        this.pressed = false
    }
}
