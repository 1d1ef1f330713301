/**
 * The update agent's checks (GP-TM-05, GP-TM-07, GP-TM-18). An offer: authenticated first
 * (verifyOffer against the OTP anchors; its per-signature verdicts are kept for the status
 * report of a refusal), then judged against the device. A finished
 * download: the bytes in the slot must hash to the offer's digest (a tampered or torn chunk
 * fails here), then pass verifyImage, the boot stub's own verifier, exactly as the stub will
 * check them, and carry the version and security counter the offer announced.
 */

import { equalBytes } from "../boot/bytes"
import { ImageSource, SignatureReport, verifyImage } from "../boot/image"
import { SignaturePolicy } from "../boot/profile"
import { SlotName } from "../boot/state"
import { slotPartitionName } from "../boot/stub"
import { Board, requireCapability } from "../hal/board"
import { OTP_KEY_SLOT_COUNT, OtpKeySlot } from "../hal/otp"
import { OtaState } from "./agent-state"
import { judgeOffer, MAX_TABLE_CHUNK, Offer, OfferError, verifyOffer } from "./offer"

const READ_SIZE = 4096

async function readAnchors(board: Board): Promise<OtpKeySlot[]> {
    const otp = requireCapability(board.otp, "otp")
    const anchors: OtpKeySlot[] = []
    for (let i = 0; i < OTP_KEY_SLOT_COUNT; i++) anchors.push(await otp.readKeySlot(i))
    return anchors
}

export interface OfferContext {
    deviceId: string
    deviceClass: string
    signaturePolicy: SignaturePolicy
    /** The device-target rule (OfferTrust.acceptUnverifiableEcdsa); absent: false. */
    acceptUnverifiableEcdsa?: boolean
    runningVersion: string
    /** Highest offer sequence the device has accepted. */
    storedSequence: number
    /** The inactive slot, where the image would go. */
    slot: SlotName
    /** An update is on trial or being installed: no new one now. */
    busy: boolean
    /** Largest chunk the device takes (update.chunkSize); bounds an offer's chunk table. */
    maxChunk?: number
}

export interface OfferVerdict {
    /** The authenticated offer; null when it did not authenticate. */
    offer: Offer | null
    /** The failed check, or null when the device takes the offer. */
    check: string | null
    /** Per-signature verdicts, when the signatures were checked (accepted or refused). */
    signatures: SignatureReport[] | null
}

/**
 * Verify first, then judge: a refused signature names its check and nothing of the offer
 * is read; an authenticated offer is then refused "busy" or by judgeOffer's checks.
 */
export async function checkOffer(board: Board, bytes: Buffer, ctx: OfferContext): Promise<OfferVerdict> {
    const otp = requireCapability(board.otp, "otp")
    let offer: Offer
    let signatures: SignatureReport[]
    try {
        const trust = {
            anchors: await readAnchors(board),
            signaturePolicy: ctx.signaturePolicy,
            acceptUnverifiableEcdsa: ctx.acceptUnverifiableEcdsa === true,
        }
        const verified = await verifyOffer(board.crypto, bytes, trust)
        offer = verified.offer
        signatures = verified.signatures
    } catch (err) {
        if (!(err instanceof OfferError)) throw err
        return { offer: null, check: err.check, signatures: err.signatures }
    }
    if (ctx.busy) return { offer: offer, check: "busy", signatures: signatures }
    const slotPart = requireCapability(board.flash, "flash").partition(slotPartitionName(ctx.slot))
    const check = judgeOffer(offer, {
        deviceId: ctx.deviceId,
        deviceClass: ctx.deviceClass,
        runningVersion: ctx.runningVersion,
        otpCounter: await otp.readCounter(),
        storedSequence: ctx.storedSequence,
        slotSize: slotPart.size,
        wallTime: board.clock.wallTime(),
    })
    const table = offer.chunkTable === undefined ? null : offer.chunkTable
    const limit = ctx.maxChunk === undefined ? MAX_TABLE_CHUNK : ctx.maxChunk
    // A table fixes the chunk size: the device refuses chunks larger than it can buffer.
    const tooBig = table !== null && table.chunkSize > limit
    const failed = check === null && tooBig ? "chunk-size" : check
    return { offer: offer, check: failed, signatures: signatures }
}

export interface VerifyConfig {
    deviceClass: string
    signaturePolicy: SignaturePolicy
    /** The device-target rule, as for the offer (VerifyPolicy.acceptUnverifiableEcdsa). */
    acceptUnverifiableEcdsa?: boolean
}

/**
 * Null when the downloaded image may be installed, otherwise the failed check: "digest",
 * any ImageError check of verifyImage, or "offer-mismatch". Flash errors pass through.
 */
export async function verifyDownload(
    board: Board,
    state: OtaState,
    config: VerifyConfig
): Promise<string | null> {
    const flash = requireCapability(board.flash, "flash")
    const otp = requireCapability(board.otp, "otp")
    const part = flash.partition(slotPartitionName(state.slot === null ? "a" : state.slot))
    const size = state.imageSize

    const hash = board.crypto.createSha256()
    let offset = 0
    while (offset < size) {
        const length = size - offset < READ_SIZE ? size - offset : READ_SIZE
        hash.update(await part.read(offset, length))
        offset = offset + length
    }
    if (!equalBytes(hash.digest(), state.imageDigest)) return "digest"

    const anchors = await readAnchors(board)
    const source: ImageSource = {
        size: size,
        read: async (at: number, length: number) => await part.read(at, length),
    }
    try {
        const verified = await verifyImage(board.crypto, source, {
            deviceClass: config.deviceClass,
            minSecurityCounter: await otp.readCounter(),
            anchors: anchors,
            signaturePolicy: config.signaturePolicy,
            exact: true,
            keepPayload: false,
            acceptUnverifiableEcdsa: config.acceptUnverifiableEcdsa === true,
        })
        if (verified.header.version !== state.version) return "offer-mismatch"
        if (verified.header.securityCounter !== state.securityCounter) return "offer-mismatch"
    } catch (err) {
        if (err && typeof (err as any).check === "string" && (err as any).code === undefined)
            return (err as any).check
        throw err
    }
    return null
}
