/**
 * The application entry the boot stub hands control to (DESIGN.md section 6, step 5). In
 * the sim it is bundled for Node, signed as an image payload and started by the loader with
 * the board and the measured-boot record. It runs its self-test first; an image on trial
 * that fails it is never confirmed, so the attempt limit brings the previous image back.
 */

import { MeasuredBoot } from "../boot/stub"
import { Profile } from "../boot/profile"
import { Board } from "../hal/board"
import { runSelfTest, SelfTestResult } from "./selftest"

/** The interface version between the loader and an app bundle. */
export const APP_ABI = 1

export interface AppContext {
    board: Board
    profile: Profile
    measured: MeasuredBoot
}

export interface AppReport {
    abi: number
    /** Identifies the app code that runs (the bundle says it of itself). */
    app: string
    version: string
    slot: string
    trial: boolean
    selfTest: SelfTestResult
}

/** What the app reports about itself once started; used by `sim boot --run` and tests. */
export async function describeApp(ctx: AppContext): Promise<AppReport> {
    return {
        abi: APP_ABI,
        app: "bulwark-app",
        version: ctx.measured.version,
        slot: ctx.measured.slot,
        trial: ctx.measured.trial,
        selfTest: runSelfTest(ctx.board.crypto),
    }
}
