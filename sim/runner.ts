/**
 * The sim runner (DESIGN.md section 6; GP-TM-04, GP-TM-16, GP-TM-18): powers a simulated
 * device on, runs the boot stub, loads exactly the payload it verified and runs that app
 * until the board resets; a reboot, a watchdog expiry or a power cut re-enters the boot stub,
 * so an update really switches the code that runs. With no valid image the device waits in
 * recovery. `startDevice` is what `bulwark sim run` and the demo drive. With `console`, a
 * device whose profile enables the admin console serves it on DEV/console.sock.
 */

import { runBootStub, BootDecision, SlotRefusal } from "../boot/stub"
import { ResetReason } from "../hal/clock"
import { isPowerLoss } from "../hal/errors"
import { AppReport, AppState } from "../src/app"
import { SimBoard } from "./board"
import { TearMode } from "./flash"
import { loadAppBundle, RunningApp } from "./loader"
import { simMqttTransport } from "./mqtt"
import { RebootSignal } from "./power"
import { SocketConsole, consoleSocketPath } from "./console"
import { Console } from "../hal/local"

/** Watchdog the "ROM" arms before the app starts: an app that never feeds it is reset. */
export const ROM_WATCHDOG_MS = 10000

export interface BrokerAddress {
    host: string
    port: number
}

export interface BootRecord {
    /** 1 for the first boot of this runner. */
    index: number
    booted: "a" | "b" | null
    version: string | null
    trial: boolean
    recovery: boolean
    refused: SlotRefusal[]
    /** What the app says about itself (describeApp), when one runs. */
    app: AppReport | null
    /** Why this run ended; null while it runs. */
    endedBy: ResetReason | "stop" | null
}

export type RunnerEvent =
    | { event: "boot"; boot: BootRecord }
    | { event: "reset"; reason: ResetReason; index: number }
    | { event: "app-error"; message: string; index: number }

export interface RunnerOptions {
    onEvent?: (e: RunnerEvent) => void
    /** Diagnostic lines of the app (quiet when absent). */
    log?: (line: string) => void
    /**
     * Serve the admin console on DEV/console.sock (`bulwark sim console --dir DEV`) while
     * the app runs, when the device profile enables it (services.console). Default off.
     */
    console?: boolean
    /**
     * Timeout of the ROM watchdog armed before each app start (default ROM_WATCHDOG_MS).
     * Tests lower it so a hung trial image is reset in seconds; the app re-arms its own.
     */
    watchdogMs?: number
}

/** The channel of a board whose profile keeps the console off: closed from the start. */
const NO_CONSOLE: Console = {
    readLine: async () => null,
    writeLine: async () => undefined,
}

export interface DeviceHandle {
    readonly dir: string
    /** Every boot so far, oldest first. */
    boots(): BootRecord[]
    /** The running app's state; null during a reset or in recovery. */
    app(): AppState | null
    /** Resolves once `predicate` holds (checked every 20 ms); rejects after `timeoutMs`. */
    waitFor(predicate: (h: DeviceHandle) => boolean, timeoutMs: number, what?: string): Promise<void>
    /**
     * Fault injection (tests, the demo): cuts power during the (afterOps+1)-th flash program
     * or erase of the running board from now, tearing it; the device then powers up again
     * and goes through the boot stub, as after a real cut.
     */
    cutPowerAfter(afterOps: number, tear?: TearMode): void
    /** Stops the app, closes the session and powers the board off. */
    stop(): Promise<void>
}

function isRunEnd(err: unknown): boolean {
    if (err instanceof RebootSignal) return true
    return isPowerLoss(err)
}

function errorText(err: unknown): string {
    return err instanceof Error ? err.name + ": " + err.message : String(err)
}

class Runner implements DeviceHandle {
    private readonly records: BootRecord[] = []
    private current: RunningApp | null = null
    private stopped = false
    private wake: () => void = () => undefined
    private readonly stopSignal: Promise<"stop">
    private finished: Promise<void> = Promise.resolve()
    private board: SimBoard | null = null
    private socket: SocketConsole | null = null

    constructor(
        readonly dir: string,
        private readonly broker: BrokerAddress,
        private readonly options: RunnerOptions
    ) {
        this.stopSignal = new Promise((resolve) => {
            this.wake = () => resolve("stop")
        })
    }

    boots(): BootRecord[] {
        return this.records.slice()
    }

    app(): AppState | null {
        return this.current === null ? null : this.current.state()
    }

    async waitFor(predicate: (h: DeviceHandle) => boolean, timeoutMs: number, what = "condition") {
        const deadline = Date.now() + timeoutMs
        while (!predicate(this)) {
            if (Date.now() > deadline) throw new Error("device " + this.dir + ": timed out waiting for " + what)
            await new Promise((resolve) => setTimeout(resolve, 20))
        }
    }

    cutPowerAfter(afterOps: number, tear: TearMode = "prefix"): void {
        if (this.board === null) throw new Error("device " + this.dir + " is not powered")
        this.board.flash.armPowerCut(afterOps, tear)
    }

    async stop(): Promise<void> {
        this.stopped = true
        this.wake()
        await this.finished
    }

    async start(): Promise<void> {
        const first = await SimBoard.open(this.dir, {
            clock: "real",
            mqtt: simMqttTransport,
            console: this.options.console ? (board) => this.openConsole(board) : undefined,
        })
        this.finished = this.life(first)
    }

    /** A fresh socket for each power-on; the previous run's is closed with its session. */
    private openConsole(board: SimBoard): Console {
        this.closeConsole()
        if (!board.profile.services.console) return NO_CONSOLE
        this.socket = new SocketConsole(consoleSocketPath(this.dir))
        return this.socket
    }

    private closeConsole(): void {
        if (this.socket !== null) this.socket.close()
        this.socket = null
    }

    private emit(e: RunnerEvent): void {
        if (this.options.onEvent) this.options.onEvent(e)
    }

    private async life(first: SimBoard): Promise<void> {
        let board = first
        try {
            while (!this.stopped) {
                await this.runOnce(board)
                if (this.stopped) break
                board = await board.powerCycle()
            }
        } finally {
            this.closeConsole()
            board.close()
        }
    }

    /** One power-on: boot stub, app, until a reset or stop. */
    private async runOnce(board: SimBoard): Promise<void> {
        this.board = board
        const record: BootRecord = {
            index: this.records.length + 1,
            booted: null,
            version: null,
            trial: false,
            recovery: false,
            refused: [],
            app: null,
            endedBy: null,
        }
        let decision: BootDecision
        try {
            decision = await runBootStub(
                board,
                {
                    deviceClass: board.profile.deviceClass,
                    trialAttempts: board.profile.boot.trialAttempts,
                    signaturePolicy: board.profile.boot.signaturePolicy,
                },
                true
            )
        } catch (err) {
            if (isRunEnd(err)) return
            throw err
        }
        record.booted = decision.booted
        record.version = decision.version
        record.trial = decision.trial
        record.recovery = decision.recovery
        record.refused = decision.refused
        this.records.push(record)

        if (decision.payload !== null && decision.measured !== null)
            await this.startApp(board, decision, record)
        this.emit({ event: "boot", boot: record })

        const ended = await Promise.race([board.resetRequested, this.stopSignal])
        record.endedBy = ended
        const app = this.current
        this.current = null
        this.closeConsole()
        if (app !== null) await app.stop().catch(() => undefined)
        if (ended !== "stop") this.emit({ event: "reset", reason: ended, index: record.index })
    }

    private async startApp(board: SimBoard, decision: BootDecision, record: BootRecord) {
        const log = this.options.log
        const ctx = {
            board: board,
            profile: board.profile,
            measured: decision.measured!,
            broker: this.broker,
            spawn: (task: () => Promise<void>) => {
                task().catch((err) => this.appFailed(board, err, record))
            },
            log: log === undefined ? undefined : (line: string) => log(this.dir + ": " + line),
        }
        try {
            await board.watchdog.start(this.options.watchdogMs ?? ROM_WATCHDOG_MS)
            const module = loadAppBundle(decision.payload!)
            record.app = await module.describeApp(ctx)
            if (module.createApp === undefined) return
            const app = module.createApp(ctx)
            this.current = app
            app.run().catch((err) => this.appFailed(board, err, record))
        } catch (err) {
            this.appFailed(board, err, record)
        }
    }

    /** An app that throws is restarted, as a device's runtime would after a crash. */
    private appFailed(board: SimBoard, err: unknown, record: BootRecord): void {
        if (isRunEnd(err) || board.powerState() !== "on") return
        this.emit({ event: "app-error", message: errorText(err), index: record.index })
        board.reset.reboot("software").catch(() => undefined)
    }
}

/**
 * Powers on the device in `dir` (a provisioned sim board) and keeps it running against
 * `broker` until `stop`. Resolves once the board is open; boots continue in the background.
 */
export async function startDevice(
    dir: string,
    broker: BrokerAddress,
    options: RunnerOptions = {}
): Promise<DeviceHandle> {
    const runner = new Runner(dir, broker, options)
    await runner.start()
    return runner
}
