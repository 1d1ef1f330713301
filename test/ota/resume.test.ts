/**
 * The agent's first decision after a boot (ota/agent-resume.ts): every combination of its
 * stored phase, the boot state and the measured boot that power cuts and the boot stub can
 * produce. GP-TM-16, GP-TM-18.
 */

import { describe, expect, it } from "vitest"

import { BootState, initialBootState } from "../../boot/state"
import { MeasuredBoot } from "../../boot/stub"
import { idleOtaState, OtaState } from "../../ota/agent-state"
import { resumeAction } from "../../ota/agent-resume"

function state(phase: OtaState["phase"], bootSeq = 5): OtaState {
    return { ...idleOtaState(9), phase, slot: "b", sequence: 9, version: "2.0.0", bootSeq }
}

function boot(seq: number, event: BootState["event"] = "none"): BootState {
    return { ...initialBootState(), seq, event }
}

function measured(slot: "a" | "b", version: string, trial: boolean): MeasuredBoot {
    return {
        slot,
        version,
        securityCounter: 1,
        digest: "",
        keySlot: 0,
        trial,
        attempt: trial ? 1 : 0,
        event: "none",
        eventSlot: null,
    }
}

describe("what the agent does after a boot", () => {
    it("GP-TM-18: waits for the confirm while the update runs on trial", () => {
        expect(resumeAction(state("installing"), boot(7), measured("b", "2.0.0", true))).toBe("trial")
    })

    it("GP-TM-16: installs again when the pending mark never reached flash", () => {
        expect(resumeAction(state("installing", 5), boot(5), measured("a", "1.0.0", false))).toBe(
            "reinstall"
        )
    })

    it("reports a confirm whose final report was cut short", () => {
        expect(resumeAction(state("installing"), boot(9), measured("b", "2.0.0", false))).toBe(
            "confirmed"
        )
    })

    it("GP-TM-06: reports a revert, and a pending image the stub refused", () => {
        const v1 = measured("a", "1.0.0", false)

        expect(resumeAction(state("installing"), boot(9, "reverted"), v1)).toBe("reverted")
        expect(resumeAction(state("installing"), boot(7, "pending-refused"), v1)).toBe(
            "pending-refused"
        )
    })

    it("GP-TM-16: an install that a signed rescue ended is reported as rescued, never as confirmed", () => {
        const rescuedBoot = boot(9, "rescued")
        const slotA = { ...state("installing"), slot: "a" as const }

        expect(resumeAction(state("installing"), rescuedBoot, measured("a", "3.0.0", false))).toBe(
            "rescued"
        )
        // The rescue image carries the update's slot and version: still nothing confirmed it.
        expect(resumeAction(slotA, rescuedBoot, measured("a", "2.0.0", false))).toBe("rescued")
        // A rescue before the install was recorded: the pending mark is still missing.
        expect(resumeAction(state("installing", 9), rescuedBoot, measured("a", "3.0.0", false))).toBe(
            "reinstall"
        )
    })

    it("resumes a download, and drops one whose slot now runs", () => {
        expect(resumeAction(state("downloading"), boot(1), measured("a", "1.0.0", false))).toBe(
            "resume"
        )
        expect(resumeAction(state("downloading"), boot(1), measured("b", "1.5.0", false))).toBe(
            "abandon"
        )
        expect(resumeAction(idleOtaState(3), boot(1), measured("a", "1.0.0", false))).toBe("none")
    })
})
