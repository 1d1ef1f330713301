/**
 * The simulated board's power rail: one switch shared by flash, OTP and secure element.
 * A power cut injected into the flash (GP-TM-06, GP-TM-16 fault tests) or a reset
 * (watchdog, reboot) takes the rail down, and every later call of the run that was cut
 * throws, until the board is opened again from disk (`SimBoard.powerCycle`).
 */

import { ResetReason } from "../hal/clock"
import { PowerLoss } from "../hal/errors"

/**
 * Thrown by `Reset.reboot` and by every HAL call of a board that has been reset: this run
 * of the firmware is over. The sim runner catches it, powers the board up again and starts
 * the next run; firmware code never catches it to carry on.
 */
export class RebootSignal extends Error {
    readonly reason: ResetReason
    constructor(reason: ResetReason) {
        super("board reset: " + reason)
        this.name = "RebootSignal"
        this.reason = reason
    }
}

export type RailState = "on" | "cut" | "reset"

export class PowerRail {
    private state: RailState = "on"
    private resetReason: ResetReason = "power-on"

    /** "on", "cut" (an injected power loss) or "reset" (watchdog or reboot pending). */
    status(): RailState {
        return this.state
    }

    /** Throws PowerLoss after a cut, RebootSignal after a reset; nothing while on. */
    check(): void {
        if (this.state === "cut") throw new PowerLoss("power is off: the board was cut")
        if (this.state === "reset") throw new RebootSignal(this.resetReason)
    }

    /** Takes the power away; the first of cut or reset wins. */
    cut(): void {
        if (this.state === "on") this.state = "cut"
    }

    /** Marks the run as ended by a reset with `reason`; the first of cut or reset wins. */
    reset(reason: ResetReason): void {
        if (this.state !== "on") return
        this.state = "reset"
        this.resetReason = reason
    }
}
