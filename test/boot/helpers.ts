/** Shared set-up of the boot suites: a release key, signed images and a booted test board. */

import { SimBoard } from "../../sim/board"
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
