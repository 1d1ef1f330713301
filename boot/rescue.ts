/**
 * The signed rescue path of a board in recovery (docs/boot.md, "Recovery"; GP-TM-16,
 * GP-TM-04, GP-TM-06), as MCUboot's serial recovery: with physical presence, a board whose
 * two slots both fail verification takes a rescue image that the stub's own checks verify in
 * RAM before any flash is touched, writes it to slot a, verifies it again from flash and
 * only then makes slot a active. A board that can still boot is never written this way.
 */

import { concatBytes } from "./bytes"
import { ImageSource, VerifiedImage, verifyImage } from "./image"
import { SlotName, readBootState, writeBootState } from "./state"
import {
    BootConfig,
    SlotRefusal,
    SlotVerifier,
    bootVerifyPolicy,
    checkRecovery,
    slotPartitionName,
    verifySlot,
} from "./stub"
import { CheckError, isPowerLoss } from "../hal/errors"
import { FlashPartition, PARTITION_BOOT_STATE } from "../hal/flash"
import { Button } from "../hal/local"

/** The slot a rescue image is written to. */
export const RESCUE_SLOT: SlotName = "a"

/**
 * A refused rescue. `check` is "not-in-recovery" (a slot still verifies), "presence" (the
 * button is not held), "image:<check>" (the image failed the named check of verifyImage),
 * "size" (it does not fit the slot) or "readback" (slot a did not verify after the write).
 * All but "readback" are raised before any flash operation.
 */
export class RescueError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "RescueError"
    }
}

/** What the rescue needs of the board: the slot verifier's pieces and the presence button. */
export interface RescueBoard extends SlotVerifier {
    /** Absent on a board without one: a rescue is then always refused ("presence"). */
    button?: Button
}

export interface RescueResult {
    slot: SlotName
    version: string
    securityCounter: number
    /** SHA-256 over header and payload, hex, as verified in RAM and again from flash. */
    digest: string
    /** The OTP key slot whose anchor verified the image. */
    keySlot: number
    /** Why each slot was refused before the rescue (the recovery it ended). */
    refused: SlotRefusal[]
}

function bufferSource(image: Buffer): ImageSource {
    return {
        size: image.length,
        read: async (offset: number, length: number) => image.slice(offset, offset + length),
    }
}

function checkOf(err: any): string {
    if (err && typeof err.check === "string") return err.check
    return "unreadable"
}

/** The image verified in RAM with the stub's policy; RescueError "image:<check>" otherwise. */
async function verifyInRam(
    hal: RescueBoard,
    config: BootConfig,
    image: Buffer
): Promise<VerifiedImage> {
    // The whole file is the image: nothing may follow the trailer (exact), unlike a slot.
    const policy = await bootVerifyPolicy(hal.otp, config, true, false)
    try {
        return await verifyImage(hal.crypto, bufferSource(image), policy)
    } catch (err) {
        if (isPowerLoss(err)) throw err
        const reason = err instanceof Error ? err.message : "unreadable"
        throw new RescueError("image:" + checkOf(err), "rescue image refused: " + reason)
    }
}

/**
 * Erases the slot and programs the image one sector at a time (each call awaited, so a
 * large image never runs one long loop), the last piece padded with 0xFF to the alignment.
 */
async function writeSlot(part: FlashPartition, image: Buffer): Promise<void> {
    await part.erase(0, part.size)
    let offset = 0
    while (offset < image.length) {
        let size = image.length - offset
        if (size > part.sectorSize) size = part.sectorSize
        let piece: Buffer = image.slice(offset, offset + size)
        const aligned = Math.ceil(size / part.writeAlign) * part.writeAlign
        if (aligned > size) {
            const pad = Buffer.alloc(aligned - size)
            for (let i = 0; i < pad.length; i++) pad[i] = 0xff
            piece = concatBytes([piece, pad])
        }
        await part.program(offset, piece)
        offset = offset + size
    }
}

/**
 * Makes slot a the active slot with nothing pending. A stored `confirmed` event for slot a
 * would make the next boot burn the OTP counter for whatever slot a holds; it is cleared
 * before slot a is written, so a cut before the final record never raises the counter for
 * the rescue image, which no health check has confirmed.
 */
async function clearConfirmedEvent(hal: RescueBoard): Promise<void> {
    const part = hal.flash.partition(PARTITION_BOOT_STATE)
    const stored = await readBootState(hal.crypto, part)
    const state = stored.state
    if (state.event !== "confirmed" || state.eventSlot !== RESCUE_SLOT) return
    await writeBootState(hal.crypto, part, stored, {
        seq: state.seq,
        active: state.active,
        pending: state.pending,
        attempts: state.attempts,
        event: "none",
        eventSlot: null,
    })
}

/**
 * The rescue's last step: slot a active, nothing pending, and the event "rescued" for slot a,
 * which the stub passes to the app in the measured-boot record so the app's boot audit
 * record says a rescue happened (GP-TM-55). The stub decides on it exactly as on "none".
 */
async function activateRescueSlot(hal: RescueBoard): Promise<void> {
    const part = hal.flash.partition(PARTITION_BOOT_STATE)
    const stored = await readBootState(hal.crypto, part)
    await writeBootState(hal.crypto, part, stored, {
        seq: stored.state.seq,
        active: RESCUE_SLOT,
        pending: null,
        attempts: 0,
        event: "rescued",
        eventSlot: RESCUE_SLOT,
    })
}

/**
 * Rescues a board in recovery with `image` (the whole signed image file). In order: the
 * board must be in recovery by the stub's own decision (checkRecovery), the button must be
 * held now, the image must verify in RAM with the stub's policy (OTP anchors and revoke
 * bits, device class, OTP security counter, signature policy) and fit slot a. Only then is
 * slot a erased and programmed, verified again from flash (its digest must be the one
 * verified in RAM), and the boot state written: slot a active, nothing pending, event
 * "rescued" for slot a (reported by the app at its next start). The OTP counter is not
 * raised (no health check confirmed the image); it rises with the next confirmed update.
 *
 * Power-safe: until slot a verifies the board is still in recovery (both slots refused);
 * once it does, every boot state the board can hold boots it. RescueError names the check
 * that refused; nothing stored has changed then, except after "readback", when slot a holds
 * whatever the flash kept and the board is still in recovery. PowerLoss passes through.
 */
export async function rescue(
    hal: RescueBoard,
    config: BootConfig,
    image: Buffer
): Promise<RescueResult> {
    const recovery = await checkRecovery(hal, config)
    if (!recovery.recovery)
        throw new RescueError("not-in-recovery", "a slot verifies: the board boots, no rescue")

    const held = hal.button !== undefined && hal.button !== null && (await hal.button.held())
    if (!held) throw new RescueError("presence", "hold the button to rescue the board")

    const verified = await verifyInRam(hal, config, image)
    const part = hal.flash.partition(slotPartitionName(RESCUE_SLOT))
    if (Math.ceil(image.length / part.writeAlign) * part.writeAlign > part.size)
        throw new RescueError("size", "rescue image larger than slot " + RESCUE_SLOT)

    await clearConfirmedEvent(hal)
    await writeSlot(part, image)

    const readBack = await verifySlot(hal, config, RESCUE_SLOT)
    const digest = verified.digest.toString("hex")
    if (readBack.image === null || readBack.image.digest.toString("hex") !== digest)
        throw new RescueError("readback", "slot a does not verify after the write")

    await activateRescueSlot(hal)
    return {
        slot: RESCUE_SLOT,
        version: verified.header.version,
        securityCounter: verified.header.securityCounter,
        digest: digest,
        keySlot: verified.keySlot,
        refused: recovery.refused,
    }
}
