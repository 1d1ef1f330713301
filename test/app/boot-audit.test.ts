/**
 * The audit record of each boot (src/app-audit.ts bootEntry; GP-TM-55): every course change
 * of the boot stub is named in it, and a boot that did not run the image it was meant to is
 * recorded as a failure, so a reviewer filtering the log for failures finds it. A signed
 * rescue (boot/rescue.ts) is named too: the app started on a rescued board records it.
 */

import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { HEADER_SIZE } from "../../boot/image-format"
import { rescue } from "../../boot/rescue"
import { BootEvent } from "../../boot/state"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { bootEntry } from "../../src/app-audit"
import { createCa } from "../../tools/ca"
import { boot, bootConfig, flashSlot, releaseKey, signedImage } from "../boot/helpers"
import { removeTempDirs, tempDir } from "../transport/fixtures"
import { auditRecords, measuredBoot, powerOff, powerOn, provisionedBoard } from "./harness"

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

    it("GP-TM-55: a rescued boot is audited as info naming event=rescued for slot a (the board boots again; nothing failed)", () => {
        const rescued = bootWith("rescued", "a")

        expect(rescued).toMatchObject({ event: "boot", actor: "boot-stub", outcome: "info" })
        expect(rescued.detail).toBe("slot=a version=1.3.0 counter=2 trial=false event=rescued event-slot=a")
    })
})

describe("the boot record of a rescued board", () => {
    let caDir: string

    beforeAll(async () => {
        caDir = join(tempDir("bulwark-rescue-audit-ca-"), "ca")
        await createCa(caDir, "Rescue audit fleet")
    })

    afterAll(() => removeTempDirs())

    /** Runs the stub on the closed board in `dir`; the measured-boot record it hands over. */
    async function bootStub(dir: string) {
        const board = await SimBoard.open(dir)
        const decision = await boot(board)
        board.close()
        return decision
    }

    it("GP-TM-55: the app started on a board rescued from recovery writes a boot audit record with event=rescued, at each start until the next boot-state write", async () => {
        const { dir } = await provisionedBoard(caDir, testProfileJson(), 2, [releaseKey.anchor])
        const v2 = await signedImage("2.0.0", 2)
        const tamperedV2 = Buffer.from(v2)
        tamperedV2[HEADER_SIZE + 10] ^= 0x01
        const board = await SimBoard.open(dir)
        await flashSlot(board, "a", tamperedV2)
        await flashSlot(board, "b", await signedImage("1.0.0", 1))
        await board.otp.burnLock("debug-disabled")
        const recovery = await boot(board)
        board.button.press()
        await rescue(board, bootConfig(board), await signedImage("3.0.0", 3))
        board.close()

        const starts = []
        for (let i = 0; i < 2; i++) {
            const decision = await bootStub(dir)
            starts.push(decision.measured?.event)
            await powerOff(await powerOn(dir, decision.measured!, { telemetryMs: 200 }))
        }

        expect(recovery.recovery).toBe(true)
        expect(starts).toEqual(["rescued", "rescued"])
        const boots = (await auditRecords(dir)).filter((r) => r.event === "boot")
        expect(boots.map((r) => [r.actor, r.outcome, r.detail])).toEqual([
            ["boot-stub", "info", "slot=a version=3.0.0 counter=3 trial=false event=rescued event-slot=a"],
            ["boot-stub", "info", "slot=a version=3.0.0 counter=3 trial=false event=rescued event-slot=a"],
        ])
    })
})
