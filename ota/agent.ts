/**
 * The update agent (DESIGN.md section 6; GP-TM-05, 06, 07, 18, 19, 20): takes a signed offer,
 * downloads the image in chunks into the inactive slot with power-safe progress, verifies the
 * whole image with the boot stub's own verifier, marks it pending and reboots into a trial.
 * After the boot it reports the outcome (trial, confirmed, reverted). It writes only the
 * inactive slot, "ota-state" and the boot state: never "prefs" or "secure-settings".
 *
 * Use: `await agent.start()` once after boot; feed `handleOffer`/`handleChunk` with what
 * arrives on bulwark/<id>/ota/offer and .../ota/chunk; call `tick()` periodically (timeouts,
 * the maintenance window); call `confirmed()` after confirmRunningImage.
 */

import { SignatureReport } from "../boot/image"
import { SignaturePolicy } from "../boot/profile"
import { equalBytes } from "../boot/bytes"
import { currentBootState, markPending, MeasuredBoot, otherSlot, slotPartitionName } from "../boot/stub"
import { Board, requireCapability } from "../hal/board"
import { FlashPartition } from "../hal/flash"
import { installBlocker, UpdatePolicy } from "./agent-policy"
import {
    idleOtaState,
    OtaState,
    PARTITION_OTA_STATE,
    readOtaState,
    StoredOtaState,
    writeOtaState,
} from "./agent-state"
import { encodeStatus, StatusReport, TOPIC_STATUS } from "./agent-wire"
import { Downloader } from "./agent-download"
import { resumeAction } from "./agent-resume"
import { ChunkTableRef, OfferError } from "./offer"
import { checkOffer, verifyDownload } from "./agent-verify"

export interface AgentIo {
    /**
     * Publishes on bulwark/<deviceId>/<suffix>. `reliable` reports (status) are kept while
     * offline and sent later; the others (chunk requests) may be dropped.
     */
    publish(suffix: string, payload: Buffer, reliable: boolean): Promise<void>
}

export interface AgentConfig {
    deviceId: string
    deviceClass: string
    update: UpdatePolicy
    signaturePolicy: SignaturePolicy
    /**
     * The device-target rule for offers and downloaded images on a board that cannot verify
     * ECDSA (boot/image.ts VerifyPolicy); the boot stub's image checks must use the same.
     * Absent: false.
     */
    acceptUnverifiableEcdsa?: boolean
    measured: MeasuredBoot
    /** Chunks kept in flight (default DEFAULT_WINDOW). */
    window?: number
    /** Admits one offer for judging (the "updates" rate limit); absent: all are judged. */
    admitOffer?: () => boolean
    /** Security events for the audit log: stable names, no secrets in `detail`. */
    onEvent?: (event: string, detail: string) => Promise<void>
}

const LOCK_POLL_MS = 5
/**
 * Chunks in flight: enough to keep a broker round trip busy; window x chunkSize bytes may
 * wait in the device's inbound buffer, so a small-RAM target lowers it. They are asked for
 * with range requests, one per refill of half the window (ota/agent-download.ts).
 */
export const DEFAULT_WINDOW = 8

/** What the agent is doing, for the app and tests. */
export type AgentPhase = "idle" | "downloading" | "ready" | "installing" | "trial"

export class UpdateAgent {
    private readonly board: Board
    private readonly config: AgentConfig
    private readonly io: AgentIo
    private readonly part: FlashPartition
    private stored: StoredOtaState | null = null
    private download: Downloader | null = null
    private ready = false
    private trial = false
    private approved = false
    private deferredFor = ""
    private busy = false
    /** The chunk table of the offer accepted in this run (lost at a reboot: digest only). */
    private table: ChunkTableRef | null = null

    constructor(board: Board, config: AgentConfig, io: AgentIo) {
        this.board = board
        this.config = config
        this.io = io
        this.part = requireCapability(board.flash, "flash").partition(PARTITION_OTA_STATE)
    }

    phase(): AgentPhase {
        if (this.trial) return "trial"
        if (this.ready) return "ready"
        const s = this.stored
        if (s === null || s.state.phase === "idle") return "idle"
        return s.state.phase === "installing" ? "installing" : "downloading"
    }

    /** Bytes of the image written so far (0 when nothing is downloading). */
    progress(): number {
        return this.download === null ? 0 : this.download.nextOffset
    }

    /** Reads the stored state and settles what the last boot did with an update in flight. */
    async start(): Promise<void> {
        const stored = await readOtaState(this.board.crypto, this.part)
        this.stored = stored
        const state = stored.state
        if (state.phase === "idle") return
        const boot = await currentBootState(this.board)
        const action = resumeAction(state, boot, this.config.measured)
        if (action === "trial") {
            this.trial = true
            await this.report({ state: "trial", seq: state.sequence, version: state.version })
        } else if (action === "reinstall" || action === "resume") {
            await this.resumeDownload()
        } else if (action === "confirmed") {
            await this.finish("confirmed", "")
        } else if (
            action === "reverted" ||
            action === "pending-refused" ||
            action === "rescued"
        ) {
            await this.finish("reverted", action)
        } else if (action === "abandon") {
            await this.finish("refused", "slot")
        }
    }

    /** Reports the running version (and any update in flight); the app calls it on connect. */
    async announce(): Promise<void> {
        await this.enter()
        try {
            await this.announceNow()
        } finally {
            this.busy = false
        }
    }

    /** An offer arrived: authenticate, judge, then start the download. */
    async handleOffer(bytes: Buffer): Promise<void> {
        await this.enter()
        try {
            await this.takeOffer(bytes)
        } finally {
            this.busy = false
        }
    }

    /** A chunk arrived on bulwark/<id>/ota/chunk. */
    async handleChunk(bytes: Buffer): Promise<void> {
        await this.enter()
        try {
            await this.takeChunk(bytes)
        } finally {
            this.busy = false
        }
    }

    /**
     * Periodic work: re-requests after a timeout, installs once the window opens. Skipped
     * while another entry point is at work (it comes again next tick).
     */
    async tick(): Promise<void> {
        if (this.busy) return
        this.busy = true
        try {
            if (this.download !== null) await this.download.tick()
            if (this.ready) await this.install()
        } finally {
            this.busy = false
        }
    }

    /** The user (or console) approves installing a downloaded update now. */
    approveInstall(): void {
        this.approved = true
    }

    /** The app confirmed the running trial image (after confirmRunningImage). */
    async confirmed(): Promise<void> {
        await this.enter()
        try {
            await this.settleConfirm()
        } finally {
            this.busy = false
        }
    }

    /**
     * Entry points run one at a time: the session's fiber (offers, chunks) and the app's
     * main loop (tick, confirm) both call in, and each step writes flash.
     */
    private async enter(): Promise<void> {
        while (this.busy) await this.board.clock.sleep(LOCK_POLL_MS)
        this.busy = true
    }

    private async announceNow(): Promise<void> {
        const s = this.stored
        if (this.trial && s !== null) {
            await this.report({ state: "trial", seq: s.state.sequence, version: s.state.version })
            return
        }
        if (this.download !== null && s !== null) {
            await this.report({
                state: "downloading",
                seq: s.state.sequence,
                version: s.state.version,
                offset: this.download.nextOffset,
                size: s.state.imageSize,
            })
            return
        }
        await this.report({ state: "idle" })
    }

    private async takeOffer(bytes: Buffer): Promise<void> {
        const stored = this.requireStarted()
        const digest = this.board.crypto.sha256([bytes])
        if (stored.state.phase !== "idle" && equalBytes(digest, stored.state.offerDigest)) {
            // The offer already in flight, sent again: nudge the download, judge nothing.
            if (this.download !== null) await this.download.kick()
            return
        }
        if (this.config.admitOffer !== undefined && !this.config.admitOffer()) return

        const slot = otherSlot(this.config.measured.slot)
        const verdict = await checkOffer(this.board, bytes, {
            deviceId: this.config.deviceId,
            deviceClass: this.config.deviceClass,
            signaturePolicy: this.config.signaturePolicy,
            acceptUnverifiableEcdsa: this.config.acceptUnverifiableEcdsa === true,
            runningVersion: this.config.measured.version,
            storedSequence: stored.state.highestSequence,
            slot: slot,
            busy: this.trial || stored.state.phase === "installing",
            maxChunk: this.config.update.chunkSize,
        })
        const offer = verdict.offer
        if (offer === null) {
            const check = verdict.check === null ? "offer" : verdict.check
            await this.refuseOffer(check, verdict.signatures)
            return
        }
        if (verdict.check !== null) {
            await this.refuse(verdict.check, offer.sequence, offer.version)
            return
        }

        const next: OtaState = {
            phase: "downloading",
            highestSequence: offer.sequence,
            slot: slot,
            sequence: offer.sequence,
            imageSize: offer.imageSize,
            imageDigest: offer.imageDigest,
            offerDigest: digest,
            securityCounter: offer.securityCounter,
            version: offer.version,
            sectorsDone: 0,
            bootSeq: 0,
        }
        this.stored = await writeOtaState(this.board.crypto, this.part, stored, next)
        this.ready = false
        this.approved = false
        this.table = offer.chunkTable === undefined ? null : offer.chunkTable
        await this.event("ota-accepted", "seq=" + offer.sequence + " version=" + offer.version)
        await this.report({ state: "accepted", seq: offer.sequence, version: offer.version })
        await this.resumeDownload()
    }

    private async takeChunk(bytes: Buffer): Promise<void> {
        if (this.download === null) return
        const outcome = await this.download.accept(bytes)
        this.stored = this.download.stored
        if (outcome === "complete") await this.verifyAndInstall()
        else if (outcome !== "" && outcome !== "progress") await this.refuseDownload(outcome)
    }

    private async settleConfirm(): Promise<void> {
        this.trial = false
        const stored = this.requireStarted()
        if (stored.state.phase === "installing") {
            await this.finish("confirmed", "")
            return
        }
        await this.event("ota-confirmed", "version=" + this.config.measured.version)
        await this.report({ state: "confirmed", version: this.config.measured.version })
    }

    private requireStarted(): StoredOtaState {
        if (this.stored === null) throw new OfferError("state", "agent not started")
        return this.stored
    }

    private async resumeDownload(): Promise<void> {
        const stored = this.requireStarted()
        const slot = stored.state.slot === null ? "a" : stored.state.slot
        const slotPart = requireCapability(this.board.flash, "flash").partition(
            slotPartitionName(slot)
        )
        this.download = new Downloader(this.board, this.part, slotPart, stored, {
            chunkSize: this.config.update.chunkSize,
            window: this.config.window === undefined ? DEFAULT_WINDOW : this.config.window,
            io: this.io,
            report: reporterFor(this),
            table: this.table,
        })
        if (this.download.complete()) await this.verifyAndInstall()
        else await this.download.kick()
    }

    private async verifyAndInstall(): Promise<void> {
        const stored = this.requireStarted()
        const state = stored.state
        this.download = null
        await this.report({ state: "verifying", seq: state.sequence, version: state.version })
        const check = await verifyDownload(this.board, state, this.config)
        if (check !== null) {
            await this.refuseDownload(check)
            return
        }
        this.ready = true
        await this.install()
    }

    /** Marks the verified image pending and reboots into its trial, when policy allows. */
    private async install(): Promise<void> {
        const stored = this.requireStarted()
        const state = stored.state
        const blocker = installBlocker(this.config.update, this.board.clock.wallTime(), this.approved)
        if (blocker !== null) {
            if (this.deferredFor !== blocker) {
                this.deferredFor = blocker
                await this.report({
                    state: "deferred",
                    seq: state.sequence,
                    version: state.version,
                    check: blocker,
                })
            }
            return
        }
        this.ready = false
        const boot = await currentBootState(this.board)
        const installing: OtaState = {
            phase: "installing",
            highestSequence: state.highestSequence,
            slot: state.slot,
            sequence: state.sequence,
            imageSize: state.imageSize,
            imageDigest: state.imageDigest,
            offerDigest: state.offerDigest,
            securityCounter: state.securityCounter,
            version: state.version,
            sectorsDone: stored.done,
            bootSeq: boot.seq,
        }
        this.stored = await writeOtaState(this.board.crypto, this.part, stored, installing)
        await markPending(this.board, state.slot === null ? "a" : state.slot)
        await this.event("ota-installed", "seq=" + state.sequence + " version=" + state.version)
        await this.report({ state: "installing", seq: state.sequence, version: state.version })
        await requireCapability(this.board.reset, "reset").reboot("update")
    }

    private async refuseDownload(check: string): Promise<void> {
        const stored = this.requireStarted()
        this.download = null
        this.ready = false
        const seq = stored.state.sequence
        const version = stored.state.version
        this.stored = await writeOtaState(
            this.board.crypto,
            this.part,
            stored,
            idleOtaState(stored.state.highestSequence)
        )
        await this.refuse(check, seq, version)
    }

    /** An offer that did not authenticate: its verdicts go out when the signatures were checked. */
    private async refuseOffer(check: string, signatures: SignatureReport[] | null) {
        await this.event("ota-refused", "check=" + check)
        const status: StatusReport = { state: "refused", check: check }
        if (signatures !== null) status.signatures = signatures
        await this.report(status)
    }

    private async refuse(check: string, seq: number | undefined, version: string | undefined) {
        await this.event("ota-refused", "check=" + check + (seq === undefined ? "" : " seq=" + seq))
        await this.report({ state: "refused", seq: seq, version: version, check: check })
    }

    /** Ends the update in flight with a final report and an idle record. */
    private async finish(state: "confirmed" | "reverted" | "refused", check: string) {
        const stored = this.requireStarted()
        const seq = stored.state.sequence
        const version = stored.state.version
        this.stored = await writeOtaState(
            this.board.crypto,
            this.part,
            stored,
            idleOtaState(stored.state.highestSequence)
        )
        await this.event("ota-" + state, "seq=" + seq + " version=" + version)
        const status: StatusReport = { state: state, seq: seq, version: version }
        if (check !== "") status.check = check
        await this.report(status)
    }

    private async event(name: string, detail: string): Promise<void> {
        if (this.config.onEvent !== undefined) await this.config.onEvent(name, detail)
    }

    /** Publishes a status report with the running version (reliable: kept while offline). */
    async report(status: StatusReport): Promise<void> {
        await this.io.publish(
            TOPIC_STATUS,
            encodeStatus(status, this.config.measured.version),
            true
        )
    }
}

/** A report callback bound to `agent` without an arrow function using `this`. */
function reporterFor(agent: UpdateAgent): (status: StatusReport) => Promise<void> {
    return async function (status: StatusReport): Promise<void> {
        await agent.report(status)
    }
}
