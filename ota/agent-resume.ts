/**
 * What the update agent does first after a boot (GP-TM-16, GP-TM-18): from its stored
 * state, the boot state and the measured boot it decides whether an update is on trial,
 * was confirmed, was reverted or refused by the boot stub, must be installed again (power
 * was cut before the pending mark), or resumes downloading. Pure: no I/O.
 */

import { BootState } from "../boot/state"
import { MeasuredBoot } from "../boot/stub"
import { OtaState } from "./agent-state"

export type ResumeAction =
    /** Nothing in flight. */
    | "none"
    /** The update runs on trial: wait for the app's confirm. */
    | "trial"
    /** Verified and recorded, but the pending mark never reached flash: verify, mark again. */
    | "reinstall"
    /** The update runs confirmed; only the final report was missing. */
    | "confirmed"
    /** The stub brought the previous image back after the trial attempts. */
    | "reverted"
    /** The stub refused the pending image at boot. */
    | "pending-refused"
    /** A signed rescue (boot/rescue.ts) rewrote slot a while the update was in flight. */
    | "rescued"
    /** The download's slot is the running one (a fallback happened): drop the download. */
    | "abandon"
    /** Go on downloading where the progress log says. */
    | "resume"

export function resumeAction(state: OtaState, boot: BootState, measured: MeasuredBoot): ResumeAction {
    const runsIt = measured.slot === state.slot && measured.version === state.version
    if (state.phase === "installing") {
        if (measured.trial && runsIt) return "trial"
        if (!measured.trial && boot.seq === state.bootSeq) return "reinstall"
        // Before the version match: a rescue image may carry the update's slot and version,
        // but nothing confirmed it, so the update is not reported as confirmed.
        if (boot.event === "rescued") return "rescued"
        if (!measured.trial && runsIt) return "confirmed"
        return boot.event === "pending-refused" ? "pending-refused" : "reverted"
    }
    if (state.phase === "downloading") {
        if (state.slot === measured.slot || measured.trial) return "abandon"
        return "resume"
    }
    return "none"
}
