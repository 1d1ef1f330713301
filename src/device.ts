/**
 * Device entry of the firmware (DESIGN.md sections 1 and 4; GP-TM-08, GP-TM-16). Validates the
 * device profile embedded at build time, assembles the DeviceScript board for the profile's
 * board (with the portable SLH-DSA verifier), runs the crypto self-test, reports what the
 * board cannot do, and refuses to start on any failure. tools/device-build.ts generates the
 * program that calls `startDevice`.
 */

import { parseProfile, Profile, ProfileError } from "../boot/profile"
import { slhDsaVerify } from "../boot/slhdsa"
import { createDeviceBoard, DeviceBoard, missingCapabilities } from "../hal/devicescript/board"
import { cryptoSelfTest } from "../hal/devicescript/crypto"
import { HalError } from "../hal/errors"

export interface DeviceStart {
    ok: boolean
    /** Why the device refused to start ("profile: board", "self-test: aead", ...); "" if ok. */
    refusal: string
    board: DeviceBoard | null
    profile: Profile | null
}

function refused(refusal: string): DeviceStart {
    return { ok: false, refusal: refusal, board: null, profile: null }
}

/**
 * Starts the device from the profile JSON. Never throws for a bad profile, a board mismatch
 * or a failed self-test: it returns the refusal, and the caller keeps the device idle.
 */
export async function startDevice(
    profileJson: unknown,
    log: (line: string) => void
): Promise<DeviceStart> {
    let profile: Profile
    try {
        profile = parseProfile(profileJson)
    } catch (e) {
        if (e instanceof ProfileError) return refused("profile: " + e.field)
        throw e
    }

    let board: DeviceBoard
    try {
        board = createDeviceBoard(profile.board, { slhDsa: slhDsaVerify })
    } catch (e) {
        if (e instanceof HalError) return refused("board: " + e.code)
        throw e
    }

    const failed = cryptoSelfTest(board.crypto)
    if (failed !== null) return refused("self-test: " + failed)

    log("bulwark: device " + profile.deviceClass + " on " + board.device.name)
    const missing = missingCapabilities(board)
    for (let i = 0; i < missing.length; i++) log("bulwark: unsupported " + missing[i])
    return { ok: true, refusal: "", board: board, profile: profile }
}
