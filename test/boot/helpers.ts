/** Shared set-up of the boot suites: a release key, signed images and a booted test board. */

import { PowerLoss } from "../../hal/errors"
import { SimBoard } from "../../sim/board"
import { TearMode } from "../../sim/flash"
import { makeTestBoard, TestBoardOptions } from "../../sim/testing"
import { generateReleaseKey, ReleasePrivateKey } from "../../tools/keyfile"
import { buildSignedImage } from "../../tools/signer"
import { BootConfig, BootDecision, runBootStub } from "../../boot/stub"
import { SlotName } from "../../boot/state"

export const CLASS = "bulwark-test"

export const releaseKey: ReleasePrivateKey = generateReleaseKey("p256")

export async function signedImage(
    version: string,
    counter: number,
    options: { payload?: Buffer; key?: ReleasePrivateKey; deviceClass?: string } = {}
): Promise<Buffer> {
    return buildSignedImage({
        payload: options.payload ?? Buffer.from(`payload of ${version} `.repeat(40)),
        version,
        counter,
        deviceClass: options.deviceClass ?? CLASS,
        key: options.key ?? releaseKey,
    })
}

export async function newBoard(options: TestBoardOptions = {}): Promise<SimBoard> {
    return makeTestBoard({ trust: [releaseKey.anchor], ...options })
}

export function bootConfig(board: SimBoard): BootConfig {
    return {
        deviceClass: board.profile.deviceClass,
        trialAttempts: board.profile.boot.trialAttempts,
        signaturePolicy: board.profile.boot.signaturePolicy,
    }
}

export async function boot(board: SimBoard, keepPayload = false): Promise<BootDecision> {
    return runBootStub(board, bootConfig(board), keepPayload)
}

export async function flashSlot(board: SimBoard, slot: SlotName, image: Buffer): Promise<void> {
    await board.debugFlash(slot === "a" ? "slot-a" : "slot-b", image)
}

/** Every way the sim can tear the interrupted write of a power cut. */
export const TEARS: TearMode[] = ["none", "prefix", "garbage"]

export type Step = (board: SimBoard) => Promise<unknown>

/** Runs the step with a cut armed; returns the board that comes back after the power cycle. */
export async function cutAndRestart(
    board: SimBoard,
    step: Step,
    after: number,
    tear: TearMode,
    seed: number
): Promise<{ board: SimBoard; cut: boolean }> {
    board.flash.armPowerCut(after, tear, seed)
    let cut = false
    try {
        await step(board)
    } catch (err) {
        if (!(err instanceof PowerLoss)) throw err
        cut = true
    }
    board.flash.disarmPowerCut()
    return { board: await board.powerCycle(), cut }
}
