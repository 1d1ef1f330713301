/**
 * The audit record of each boot (src/app-audit.ts bootEntry; GP-TM-55): every course change
 * of the boot stub is named in it, and a boot that did not run the image it was meant to is
 * recorded as a failure, so a reviewer filtering the log for failures finds it.
 */

import { describe, expect, it } from "vitest"

import { BootEvent } from "../../boot/state"
import { bootEntry } from "../../src/app-audit"
import { measuredBoot } from "./harness"

function bootWith(event: BootEvent, eventSlot: "a" | "b" | null) {
    return bootEntry({ ...measuredBoot("1.3.0", 2), event, eventSlot })
}

describe("the boot record in the audit log", () => {
    it("GP-TM-55: a reverted, fallen-back or pending-refused boot is audited as a failure naming the event", () => {
        const failures = (["reverted", "fallback", "pending-refused"] as const).map((e) =>
            bootWith(e, "b")
        )

        for (const [i, event] of ["reverted", "fallback", "pending-refused"].entries()) {
            expect(failures[i]).toMatchObject({ event: "boot", actor: "boot-stub", outcome: "failure" })
            expect(failures[i].detail).toContain(`event=${event} event-slot=b`)
        }
    })

    it("GP-TM-55: an ordinary or confirming boot is audited as info with slot, version and counter", () => {
        const plain = bootWith("none", null)
        const confirmed = bootWith("confirmed", "a")

        expect(plain).toMatchObject({ outcome: "info", detail: "slot=a version=1.3.0 counter=2 trial=false" })
        expect(confirmed.outcome).toBe("info")
        expect(confirmed.detail).toContain("event=confirmed event-slot=a")
    })
})
