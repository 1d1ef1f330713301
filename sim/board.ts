/**
 * SimBoard: the simulated board (DESIGN.md sections 1 and 3) that every test, the demo and
 * the fleet run on. A device is a directory DEV holding its flash, fuses, secure element,
 * reset reason and profile, so it survives a process restart; `powerCycle` restarts it from
 * disk. Factory writes go through the debug port, which the OTP fuse closes (GP-TM-33).
 */

import { existsSync, mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { Board } from "../hal/board"
import { ResetReason } from "../hal/clock"
import { CheckError, FlashError, HalError } from "../hal/errors"
import { Console } from "../hal/local"
import { MqttTransport } from "../hal/mqtt"
import { parseProfile, Profile, ProfileError } from "../boot/profile"
import { SimCrypto } from "./crypto"
import { RESET_REASONS, RealClock, SimReset, SimWatchdog, VirtualClock } from "./clock"
import { SimFlash } from "./flash"
import { SimButton, SimTamper } from "./local"
import { SimOtp } from "./otp"
import { PowerRail, RailState } from "./power"
import { SimRng } from "./rng"
import { SimSecureElement } from "./secure-element"
import { SimStateError, readJsonObject, writeJsonAtomic } from "./store"

/** Files of a device directory. */
export const DEV_FILES = {
    board: "board.json",
    flash: "flash.bin",
    otp: "otp.json",
    secureElement: "se.json",
    reset: "reset.json",
    tamper: "tamper.json",
}

const BOARD_FORMAT = "bulwark-sim-board"

/** "exists", "missing", "corrupt" (device directory) or "locked" (debug port fused off). */
export class SimBoardError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "SimBoardError"
    }
}

export interface SimBoardCreateOptions {
    /** The device profile, as JSON or already parsed; validated with parseProfile. */
    profile: unknown
    /** Overrides the profile's deviceClass. */
    deviceClass?: string
    /** Anchor digests (boot/anchor.ts) burnt into OTP key slots 0..n-1. */
    trust: Buffer[]
    /** Initial OTP anti-rollback counter (default 0). */
    counter?: number
}

export interface SimBoardOptions {
    /** "virtual" (default: tests advance it) or "real" (the sim runner). */
    clock?: "virtual" | "real"
    /** Wall time of a virtual clock at power-on, seconds since the epoch; default unknown. */
    wallTime?: number | null
    /** Seed of the flash tear generator (default 1), so torn writes reproduce. */
    seed?: number
    /** Attaches an MQTT transport (the sim TLS client) at each power-on. */
    mqtt?: (board: SimBoard) => MqttTransport
    /** Attaches a local console at each power-on. */
    console?: (board: SimBoard) => Console
}

function isEmptyDir(dir: string): boolean {
    return !existsSync(dir) || readdirSync(dir).length === 0
}

function profileWithClass(profile: unknown, deviceClass: string | undefined): Profile {
    if (profile === null || typeof profile !== "object" || Array.isArray(profile))
        throw new ProfileError("(root)", "must be an object")
    const json: Record<string, unknown> = { ...(profile as Record<string, unknown>) }
    if (deviceClass !== undefined) json.deviceClass = deviceClass
    return parseProfile(json)
}

/** Wraps a state-file failure into the board's typed error naming the file. */
function loadStep<T>(what: string, step: () => T): T {
    try {
        return step()
    } catch (err) {
        if (err instanceof SimStateError)
            throw new SimBoardError(err.check, "device directory: " + what + ": " + err.message)
        if (err instanceof HalError || err instanceof ProfileError)
            throw new SimBoardError("corrupt", "device directory: " + what + ": " + err.message)
        throw err
    }
}

function readResetReason(path: string): ResetReason {
    const raw = readJsonObject(path)
    const reason = raw.reason as ResetReason
    if (RESET_REASONS.indexOf(reason) < 0)
        throw new SimStateError("corrupt", path, "reset state: reason")
    return reason
}

export class SimBoard implements Board {
    readonly target = "sim"
    readonly crypto = new SimCrypto()
    readonly rng = new SimRng()
    readonly clock: VirtualClock | RealClock
    readonly flash: SimFlash
    readonly otp: SimOtp
    readonly secureElement: SimSecureElement
    readonly watchdog: SimWatchdog
    readonly reset: SimReset
    readonly tamper: SimTamper
    readonly button: SimButton
    readonly mqtt?: MqttTransport
    readonly console?: Console
    /** The device profile this board was created with (board.json), device class included. */
    readonly profile: Profile
    /** Resolves with the reason when this run ends: reboot, watchdog or power cut. */
    readonly resetRequested: Promise<ResetReason>

    private readonly rail = new PowerRail()
    private readonly listeners: ((reason: ResetReason) => void)[] = []
    private signalReset: (reason: ResetReason) => void = () => undefined
    private closed = false
    private ended = false

    /**
     * Creates the device directory `dir` (refusing one that exists and is not empty) with
     * a blank flash, the trust anchors and counter burnt into OTP, an empty secure element,
     * and opens it. ProfileError for a bad profile, OtpError for bad anchors or counter.
     */
    static async create(
        dir: string,
        create: SimBoardCreateOptions,
        options: SimBoardOptions = {}
    ): Promise<SimBoard> {
        const profile = profileWithClass(create.profile, create.deviceClass)
        if (!isEmptyDir(dir))
            throw new SimBoardError("exists", "device directory not empty: " + dir)
        mkdirSync(dir, { recursive: true })

        SimOtp.createFile(join(dir, DEV_FILES.otp), {
            trust: create.trust,
            counter: create.counter ?? 0,
        })
        SimFlash.createFile(join(dir, DEV_FILES.flash), profile.flash)
        SimSecureElement.createFile(join(dir, DEV_FILES.secureElement))
        writeJsonAtomic(join(dir, DEV_FILES.reset), { reason: "power-on" })
        writeJsonAtomic(join(dir, DEV_FILES.tamper), { triggered: false })
        // board.json last: a directory without it is an interrupted create, reported missing.
        writeJsonAtomic(join(dir, DEV_FILES.board), { format: BOARD_FORMAT, version: 1, profile })
        return SimBoard.open(dir, options)
    }

    /**
     * Powers the device in `dir` on: monotonic time at 0, the reset reason the last run
     * stored (then "power-on" for the next one unless something else is stored). SimBoardError
     * "missing" or "corrupt" when the directory is not a whole device.
     */
    static async open(dir: string, options: SimBoardOptions = {}): Promise<SimBoard> {
        return new SimBoard(dir, options, false)
    }

    private constructor(
        readonly dir: string,
        private readonly options: SimBoardOptions,
        buttonHeld: boolean
    ) {
        if (!existsSync(join(dir, DEV_FILES.board)))
            throw new SimBoardError("missing", "not a device directory: " + dir)
        this.profile = loadStep(DEV_FILES.board, () => {
            const raw = readJsonObject(join(dir, DEV_FILES.board))
            if (raw.format !== BOARD_FORMAT || raw.version !== 1)
                throw new SimStateError("corrupt", join(dir, DEV_FILES.board), "board format")
            return parseProfile(raw.profile)
        })
        const resetPath = join(dir, DEV_FILES.reset)
        const reason = loadStep(DEV_FILES.reset, () => readResetReason(resetPath))

        this.clock =
            options.clock === "real"
                ? new RealClock()
                : new VirtualClock({ wallTime: options.wallTime ?? null })
        this.otp = loadStep(DEV_FILES.otp, () => new SimOtp(join(dir, DEV_FILES.otp), this.rail))
        this.secureElement = loadStep(
            DEV_FILES.secureElement,
            () => new SimSecureElement(join(dir, DEV_FILES.secureElement), this.rail)
        )
        this.tamper = loadStep(
            DEV_FILES.tamper,
            () => new SimTamper(join(dir, DEV_FILES.tamper), this.rail)
        )
        this.flash = loadStep(
            DEV_FILES.flash,
            () =>
                new SimFlash(join(dir, DEV_FILES.flash), this.profile.flash, this.rail, {
                    seed: options.seed ?? 1,
                    onPowerLoss: () => this.endRun("power-loss"),
                })
        )
        this.button = new SimButton(this.rail, buttonHeld)
        this.watchdog = new SimWatchdog(this.clock, this.rail, () => this.endRun("watchdog"))
        this.reset = new SimReset(reason, this.rail, (r) => this.endRun(r))
        this.resetRequested = new Promise((resolve) => {
            this.signalReset = resolve
        })

        // This run starts: unless it stores another reason, the next one is a plain power-on.
        writeJsonAtomic(resetPath, { reason: "power-on" })
        if (options.mqtt) this.mqtt = options.mqtt(this)
        if (options.console) this.console = options.console(this)
    }

    /** "on", "cut" after an injected power loss, "reset" after a reboot or watchdog. */
    powerState(): RailState {
        return this.rail.status()
    }

    /** Registers `callback` for the end of this run (reboot, watchdog, power cut). */
    onReset(callback: (reason: ResetReason) => void): void {
        this.listeners.push(callback)
    }

    /** Moves the virtual clock (tests); RangeError on a board with the real clock. */
    async advance(ms: number): Promise<void> {
        if (!(this.clock instanceof VirtualClock))
            throw new RangeError("advance: this board runs on the real clock")
        await this.clock.advance(ms)
    }

    /**
     * Cuts the power and switches the board on again from its directory: a new SimBoard
     * with a fresh clock and reset reason. This board and everything taken from it throw
     * from now on. The sim runner also uses it to restart after a reboot or watchdog.
     */
    async powerCycle(): Promise<SimBoard> {
        const held = this.button.isHeld()
        this.close()
        return new SimBoard(this.dir, this.options, held)
    }

    /** Switches the board off and releases its files; every later call throws. */
    close(): void {
        if (this.closed) return
        this.closed = true
        this.rail.cut()
        this.clock.halt()
        this.flash.close()
    }

    /**
     * Factory write through the debug port: erases the whole partition and programs `data`
     * padded with 0xFF to the write alignment. SimBoardError "locked" once the
     * debug-disable fuse is burnt (GP-TM-33); FlashError "range" when it does not fit.
     */
    async debugFlash(partition: string, data: Buffer): Promise<void> {
        const locks = await this.otp.readLocks()
        if (locks.debugDisabled)
            throw new SimBoardError("locked", "debug port disabled by the OTP fuse")
        const part = this.flash.partition(partition)
        const align = part.writeAlign
        const padded = Buffer.alloc(Math.ceil(data.length / align) * align, 0xff)
        data.copy(padded)
        if (padded.length > part.size)
            throw new FlashError("range", "image larger than partition " + partition)
        await part.erase(0, part.size)
        if (padded.length > 0) await part.program(0, padded)
    }

    /** Ends this run once: stores the reason for the next power-on and tells the runner. */
    private endRun(reason: ResetReason): void {
        if (this.closed || this.ended) return
        this.ended = true
        if (reason === "power-loss") this.rail.cut()
        else this.rail.reset(reason)
        writeJsonAtomic(join(this.dir, DEV_FILES.reset), { reason: reason })
        this.clock.halt()
        this.signalReset(reason)
        for (const listener of this.listeners) listener(reason)
    }
}
