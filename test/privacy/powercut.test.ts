/**
 * Power loss during privacy changes (src/privacy/manager.ts on src/prefs.ts; GP-TM-10,
 * GP-TM-14): a cut at every flash operation of a consent change, a rectification or an
 * erasure, with the interrupted write torn every way the sim can, leaves after the reboot
 * either the whole old state or the whole new one, never a mix; and once an erasure counts,
 * none of the erased bytes can be read from the partition.
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { PARTITION_PREFS } from "../../src/prefs"
import { exportObject } from "../../src/privacy/export"
import { PrivacyManager } from "../../src/privacy/manager"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards } from "../../sim/testing"
import { DEVICE_ID, Rig, freshRig, openRig, populate } from "./helpers"

afterAll(() => cleanupTestBoards())

const TEARS: TearMode[] = ["none", "prefix", "garbage"]
/** More cuts than any of these changes has flash operations (each has two or three). */
const CUTS = 5

type Change = (m: PrivacyManager) => Promise<void>

const CHANGES: [string, Change][] = [
    ["GP-TM-10: grant telemetry", (m) => m.setConsent("telemetry", true, "console:owner")],
    ["GP-TM-10: withdraw location", (m) => m.setConsent("location", false, "console:owner")],
    ["GP-TM-14: rectify the owner's name", (m) => m.rectify("owner-profile", "name", "Eve", "o")],
    ["GP-TM-14: restrict processing", (m) => m.setRestricted(true, "console:owner")],
    ["GP-TM-14: erase", (m) => m.erase("console:owner")],
]

/** What a reboot brings back: everything the export shows, bar the export time. */
function state(m: PrivacyManager): string {
    const doc = exportObject(m, DEVICE_ID, null)
    return JSON.stringify({ data: doc.data, consents: doc.consents, restricted: doc.restricted })
}

/** The arranged state: everything held, telemetry not granted (so granting it changes it). */
async function arranged(seed: number): Promise<Rig> {
    const rig = await populate(await freshRig({ seed }))
    await rig.manager.setConsent("telemetry", false, "console:owner")
    return rig
}

async function expectedStates(change: Change): Promise<{ old: string; next: string }> {
    const rig = await arranged(1)
    const old = state(rig.manager)
    await change(rig.manager)
    const board = await rig.board.powerCycle()
    return { old, next: state((await openRig(board)).manager) }
}

describe("privacy changes under power cuts", () => {
    for (const [name, change] of CHANGES) {
        it(name + ": a cut at every flash operation leaves the old or the new state", async () => {
            const { old, next } = await expectedStates(change)
            expect(next).not.toBe(old)
            const outcomes = new Set<string>()

            for (const tear of TEARS) {
                for (let cut = 0; cut < CUTS; cut++) {
                    const rig = await arranged(40 + cut)
                    rig.board.flash.armPowerCut(cut, tear, 7 * cut + 1)
                    let interrupted = false
                    try {
                        await change(rig.manager)
                    } catch (e) {
                        if (!(e instanceof PowerLoss)) throw e
                        interrupted = true
                    }
                    rig.board.flash.disarmPowerCut()
                    const board = await rig.board.powerCycle()
                    const after = state((await openRig(board)).manager)

                    const where = `${tear} cut after ${cut} ops`
                    if (!interrupted) expect(after, where).toBe(next)
                    else expect([old, next], where).toContain(after)
                    outcomes.add(after === old ? "old" : "new")
                    if (name.endsWith("erase") && after === next) {
                        const raw = board.flash.peek(PARTITION_PREFS, 0, 8192)
                        for (const gone of ["Ångström", "zoe@example", "59.33", "4321"])
                            expect(raw.includes(Buffer.from(gone)), where + " " + gone).toBe(false)
                    }
                }
            }
            expect([...outcomes].sort()).toEqual(["new", "old"])
        })
    }
})
