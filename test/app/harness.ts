/**
 * What the suites of the running app share: a provisioned SimBoard, the app object run on
 * the board's virtual clock with an in-memory broker (test/transport/fake-mqtt.ts) where
 * the runner's real clock would be too slow, and the audit records it left on flash.
 */

import { join } from "node:path"

import { MeasuredBoot } from "../../boot/stub"
import { AppOptions, BulwarkApp, createApp } from "../../src/app"
import { AuditLog } from "../../src/audit/log"
import { AuditRecord } from "../../src/audit/record"
import { SimBoard } from "../../sim/board"
import { provision } from "../../tools/provision"
import { FakeMqtt } from "../transport/fake-mqtt"
import { tempDir } from "../transport/fixtures"

/** The wall time the boards are opened with (seconds): November 2027. */
export const WALL_TIME = 1_800_000_000

/** A measured-boot record of a confirmed image in slot a. */
export function measuredBoot(version: string, securityCounter: number, digest = "00"): MeasuredBoot {
    return {
        slot: "a",
        version,
        securityCounter,
        digest,
        keySlot: 0,
        trial: false,
        attempt: 0,
        event: "none",
        eventSlot: null,
    }
}

/**
 * A new board with `profile`, provisioned from the fleet CA in `caDir`; `trust` are the
 * anchor digests burnt into its OTP key slots (none by default: the app suites hand the
 * app a measured-boot record instead of booting an image).
 */
export async function provisionedBoard(
    caDir: string,
    profile: unknown,
    counter: number,
    trust: Buffer[] = []
): Promise<{ dir: string; id: string }> {
    const dir = join(tempDir("bulwark-app-"), "dev")
    const created = await SimBoard.create(dir, { profile, trust, counter })
    created.close()
    const id = (await provision({ devDir: dir, caDir, iterations: 1000 })).deviceId
    return { dir, id }
}

export interface RunningApp {
    /** The device id the app read from its identity ("" when it has none). */
    id: string
    dir: string
    board: SimBoard
    app: BulwarkApp
    /** The in-memory broker of this power-on. */
    mqtt: () => FakeMqtt
    /** The app's diagnostic lines. */
    lines: string[]
    done: Promise<void>
}

/** Advances the board's virtual clock by `ms` in steps of 50 ms. */
export async function advance(r: RunningApp, ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 50) await r.board.advance(50)
}

/** Powers the board in `dir` on and runs the app for `settleMs` of virtual time. */
export async function powerOn(
    dir: string,
    measured: MeasuredBoot,
    options: AppOptions,
    settleMs = 300
): Promise<RunningApp> {
    let mqtt: FakeMqtt | null = null
    const board = await SimBoard.open(dir, {
        wallTime: WALL_TIME,
        mqtt: (b) => (mqtt = new FakeMqtt(b.clock)),
    })
    const lines: string[] = []
    const app = createApp(
        {
            board,
            profile: board.profile,
            measured,
            spawn: (task) => void task().catch(() => undefined),
            log: (line) => lines.push(line),
        },
        options
    )
    const done = app.run().catch(() => undefined)
    const running = { id: "", dir, board, app, mqtt: () => mqtt!, lines, done }
    await advance(running, settleMs)
    running.id = app.state().deviceId ?? ""
    return running
}

/** Stops the app, lets its last tick end, and closes the board. */
export async function powerOff(r: RunningApp): Promise<void> {
    await r.app.stop()
    await r.board.advance(200)
    await r.done
    r.board.close()
}

/** Every audit record on the (closed) board in `dir`, oldest first. */
export async function auditRecords(dir: string): Promise<AuditRecord[]> {
    const board = await SimBoard.open(dir)
    const log = await AuditLog.open({
        partition: board.flash.partition("audit"),
        secureElement: board.secureElement,
        crypto: board.crypto,
        clock: board.clock,
    })
    const out: AuditRecord[] = []
    await log.forEach(0, async (rec) => {
        out.push(rec)
    })
    board.close()
    return out
}
