/**
 * The verified-boot stub (DESIGN.md section 6; GP-TM-03, GP-TM-04, GP-TM-06, GP-TM-16): the
 * only code that decides what runs. It reads the power-safe boot state, gives a pending
 * update a counted trial boot (reverting it after the attempt limit), otherwise verifies
 * the confirmed slot and falls back to the other valid one, and enters recovery when no slot
 * verifies. It never runs an image below the OTP security counter, raises that counter only
 * for a confirmed image, and hands the app a measured-boot record of what it verified.
 */

import { BootEvent, BootState, SlotName, StoredBootState, readBootState, writeBootState } from "./state"
import { ImageSource, VerifiedImage, VerifyPolicy, verifyImage } from "./image"
import { SignaturePolicy } from "./profile"
import { Board, requireCapability } from "../hal/board"
import { Crypto } from "../hal/crypto"
import {
    Flash,
    FlashPartition,
    PARTITION_BOOT_STATE,
    PARTITION_SLOT_A,
    PARTITION_SLOT_B,
} from "../hal/flash"
import { OTP_KEY_SLOT_COUNT, Otp, OtpKeySlot } from "../hal/otp"
import { CheckError, isPowerLoss } from "../hal/errors"

export interface BootConfig {
    deviceClass: string
    /** Trial boots a pending image gets before it is reverted. */
    trialAttempts: number
    signaturePolicy: SignaturePolicy
}

/** What the stub hands the app: which image runs and what exactly was verified. */
export interface MeasuredBoot {
    slot: SlotName
    version: string
    securityCounter: number
    /** SHA-256 over header and payload, hex. */
    digest: string
    /** OTP key slot whose anchor verified the image. */
    keySlot: number
    /** True while this is an unconfirmed trial boot of an update. */
    trial: boolean
    /** The trial attempt this boot is (1-based), 0 outside a trial. */
    attempt: number
    /**
     * The last course change recorded in the boot state (the stub's, a confirm, or a
     * rescue: "rescued" for slot a), for the app to report. It stays until the next
     * boot-state write replaces it, so a boot that changes nothing reports it again.
     */
    event: BootEvent
    eventSlot: SlotName | null
}

export interface SlotRefusal {
    slot: SlotName
    /** The check that refused it ("empty", "digest", "signature", "security-counter", ...). */
    check: string
    reason: string
}

export interface BootDecision {
    booted: SlotName | null
    version: string | null
    trial: boolean
    recovery: boolean
    refused: SlotRefusal[]
    measured: MeasuredBoot | null
    /** The verified payload bytes, exactly those that were hashed (when requested). */
    payload: Buffer | null
}

export class BootError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "BootError"
    }
}

export function otherSlot(slot: SlotName): SlotName {
    return slot === "a" ? "b" : "a"
}

export function slotPartitionName(slot: SlotName): string {
    return slot === "a" ? PARTITION_SLOT_A : PARTITION_SLOT_B
}

function partitionSource(part: FlashPartition): ImageSource {
    return {
        size: part.size,
        read: async (offset: number, length: number) => await part.read(offset, length),
    }
}

class SlotCheck {
    image: VerifiedImage | null = null
    check = ""
    reason = ""
}

function errorCheck(err: any): string {
    if (err && typeof err.check === "string") return err.check
    return "unreadable"
}

/** The HAL pieces that verifying a slot reads: crypto, the flash slots and the OTP fuses. */
export interface SlotVerifier {
    crypto: Crypto
    flash: Flash
    otp: Otp
}

function verifierOf(board: Board): SlotVerifier {
    return {
        crypto: board.crypto,
        flash: requireCapability(board.flash, "flash"),
        otp: requireCapability(board.otp, "otp"),
    }
}

async function readAnchors(otp: Otp): Promise<OtpKeySlot[]> {
    const anchors: OtpKeySlot[] = []
    for (let i = 0; i < OTP_KEY_SLOT_COUNT; i++) anchors.push(await otp.readKeySlot(i))
    return anchors
}

/**
 * The verify policy of this board as the stub applies it: the device class and signature
 * policy of the profile, the OTP anchors with their revoke bits and the OTP security counter
 * as they read now. `exact` is false for a slot (the image is followed by erased flash) and
 * true for an image held whole in RAM (boot/rescue.ts).
 */
export async function bootVerifyPolicy(
    otp: Otp,
    config: BootConfig,
    exact: boolean,
    keepPayload: boolean
): Promise<VerifyPolicy> {
    return {
        deviceClass: config.deviceClass,
        minSecurityCounter: await otp.readCounter(),
        anchors: await readAnchors(otp),
        signaturePolicy: config.signaturePolicy,
        exact: exact,
        keepPayload: keepPayload,
    }
}

/**
 * Verifies one slot against the anchors and the OTP counter. Every failure is caught and
 * named; only PowerLoss (a board reset) propagates.
 */
async function checkSlot(
    hal: SlotVerifier,
    config: BootConfig,
    slot: SlotName,
    keepPayload: boolean
): Promise<SlotCheck> {
    const result = new SlotCheck()
    try {
        const part = hal.flash.partition(slotPartitionName(slot))
        const first = await part.read(0, 4)
        if (first[0] === 0xff && first[1] === 0xff && first[2] === 0xff && first[3] === 0xff) {
            result.check = "empty"
            result.reason = "slot is erased"
            return result
        }
        const policy = await bootVerifyPolicy(hal.otp, config, false, keepPayload)
        result.image = await verifyImage(hal.crypto, partitionSource(part), policy)
    } catch (err) {
        if (isPowerLoss(err)) throw err
        result.image = null
        result.check = errorCheck(err)
        result.reason = err instanceof Error ? err.message : "unreadable"
    }
    return result
}

function refusal(slot: SlotName, check: SlotCheck): SlotRefusal {
    return { slot: slot, check: check.check, reason: check.reason }
}

/** What verifying one slot the stub's way found: the image, or the refusal naming its check. */
export interface SlotVerdict {
    image: VerifiedImage | null
    refusal: SlotRefusal | null
}

/** Verifies `slot` exactly as the stub does before it boots it; writes nothing. */
export async function verifySlot(
    hal: SlotVerifier,
    config: BootConfig,
    slot: SlotName
): Promise<SlotVerdict> {
    const check = await checkSlot(hal, config, slot, false)
    if (check.image !== null) return { image: check.image, refusal: null }
    return { image: null, refusal: refusal(slot, check) }
}

/** Whether the stub would enter recovery, and the refusal of each slot when it would. */
export interface RecoveryCheck {
    recovery: boolean
    refused: SlotRefusal[]
}

/**
 * The stub's recovery decision without running it, so nothing is written: every path of
 * runBootStub verifies both slots before it gives up (a refused or reverted pending slot is
 * the other slot of the active one), so it enters recovery exactly when neither slot
 * verifies. A board this answers `recovery: false` for boots an image.
 */
export async function checkRecovery(hal: SlotVerifier, config: BootConfig): Promise<RecoveryCheck> {
    const refused: SlotRefusal[] = []
    const a = await verifySlot(hal, config, "a")
    if (a.refusal === null) return { recovery: false, refused: refused }
    refused.push(a.refusal)
    const b = await verifySlot(hal, config, "b")
    if (b.refusal === null) return { recovery: false, refused: refused }
    refused.push(b.refusal)
    return { recovery: true, refused: refused }
}

function stateWith(
    state: BootState,
    active: SlotName,
    pending: SlotName | null,
    attempts: number,
    event: BootEvent,
    eventSlot: SlotName | null
): BootState {
    return {
        seq: state.seq,
        active: active,
        pending: pending,
        attempts: attempts,
        event: event,
        eventSlot: eventSlot,
    }
}

function decision(
    slot: SlotName,
    image: VerifiedImage,
    trial: boolean,
    attempt: number,
    state: BootState,
    refused: SlotRefusal[]
): BootDecision {
    return {
        booted: slot,
        version: image.header.version,
        trial: trial,
        recovery: false,
        refused: refused,
        measured: {
            slot: slot,
            version: image.header.version,
            securityCounter: image.header.securityCounter,
            digest: image.digest.toString("hex"),
            keySlot: image.keySlot,
            trial: trial,
            attempt: attempt,
            event: state.event,
            eventSlot: state.eventSlot,
        },
        payload: image.payload,
    }
}

/**
 * Runs the stub once: decides which slot boots, records the decision power-safely before
 * control passes, and returns it. `keepPayload` asks for the verified payload bytes.
 */
export async function runBootStub(
    board: Board,
    config: BootConfig,
    keepPayload: boolean
): Promise<BootDecision> {
    const hal = verifierOf(board)
    const otp = hal.otp
    const statePart = hal.flash.partition(PARTITION_BOOT_STATE)
    let stored: StoredBootState = await readBootState(board.crypto, statePart)
    const refused: SlotRefusal[] = []

    const pending = stored.state.pending
    if (pending !== null) {
        if (stored.state.attempts >= config.trialAttempts) {
            stored = await writeBootState(
                board.crypto,
                statePart,
                stored,
                stateWith(stored.state, stored.state.active, null, 0, "reverted", pending)
            )
        } else {
            const trial = await checkSlot(hal, config, pending, keepPayload)
            if (trial.image !== null) {
                const attempt = stored.state.attempts + 1
                stored = await writeBootState(
                    board.crypto,
                    statePart,
                    stored,
                    stateWith(stored.state, stored.state.active, pending, attempt, "none", null)
                )
                return decision(pending, trial.image, true, attempt, stored.state, refused)
            }
            refused.push(refusal(pending, trial))
            stored = await writeBootState(
                board.crypto,
                statePart,
                stored,
                stateWith(stored.state, stored.state.active, null, 0, "pending-refused", pending)
            )
        }
    }

    const active = stored.state.active
    const main = await checkSlot(hal, config, active, keepPayload)
    if (main.image !== null) {
        // A confirm whose counter burn was cut short is completed here; no other path of
        // a normal boot raises the counter, so a fallback image never raises it, nor does
        // a rescued one ("rescued", like every event but "confirmed", is only reported).
        const counter = main.image.header.securityCounter
        const justConfirmed =
            stored.state.event === "confirmed" && stored.state.eventSlot === active
        if (justConfirmed && counter > (await otp.readCounter())) await otp.raiseCounter(counter)
        return decision(active, main.image, false, 0, stored.state, refused)
    }
    refused.push(refusal(active, main))

    const other = otherSlot(active)
    const fallback = await checkSlot(hal, config, other, keepPayload)
    if (fallback.image !== null) {
        stored = await writeBootState(
            board.crypto,
            statePart,
            stored,
            stateWith(stored.state, other, null, 0, "fallback", active)
        )
        return decision(other, fallback.image, false, 0, stored.state, refused)
    }
    refused.push(refusal(other, fallback))

    return {
        booted: null,
        version: null,
        trial: false,
        recovery: true,
        refused: refused,
        measured: null,
        payload: null,
    }
}

/**
 * Marks `slot` as holding an update for a trial boot on the next start. The caller (the
 * update agent) has verified the image already; the stub verifies it again at boot.
 */
export async function markPending(board: Board, slot: SlotName): Promise<void> {
    const flash = requireCapability(board.flash, "flash")
    const part = flash.partition(PARTITION_BOOT_STATE)
    const stored = await readBootState(board.crypto, part)
    if (stored.state.active === slot)
        throw new BootError("pending", "cannot mark the confirmed slot as pending")
    await writeBootState(
        board.crypto,
        part,
        stored,
        stateWith(stored.state, stored.state.active, slot, 0, "none", null)
    )
}

/**
 * Confirms the running trial image: it becomes the active slot, then the OTP counter rises
 * to its security counter. A cut between the two steps is completed by the next boot, which
 * raises the counter for the confirmed active image. Refused outside a trial.
 */
export async function confirmRunningImage(board: Board, measured: MeasuredBoot): Promise<void> {
    const flash = requireCapability(board.flash, "flash")
    const otp = requireCapability(board.otp, "otp")
    const part = flash.partition(PARTITION_BOOT_STATE)
    const stored = await readBootState(board.crypto, part)
    if (!measured.trial || stored.state.pending !== measured.slot)
        throw new BootError("confirm", "the running image is not on trial")
    await writeBootState(
        board.crypto,
        part,
        stored,
        stateWith(stored.state, measured.slot, null, 0, "confirmed", measured.slot)
    )
    if (measured.securityCounter > (await otp.readCounter()))
        await otp.raiseCounter(measured.securityCounter)
}

/** Reads the boot state for reporting (`sim boot --json`, the app's status). */
export async function currentBootState(board: Board): Promise<BootState> {
    const flash = requireCapability(board.flash, "flash")
    return (await readBootState(board.crypto, flash.partition(PARTITION_BOOT_STATE))).state
}
