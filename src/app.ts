/**
 * The application the boot stub hands control to (DESIGN.md section 6; GP-TM-16, 18, 19, 20):
 * it runs its self-test, connects to the broker over mutual TLS, sends telemetry, runs the
 * update agent, and on a trial boot confirms the new image only when its health checks pass
 * (self-test, broker reached, the product's own checks) within update.confirmTimeoutMs;
 * otherwise it restarts, and the stub's attempt limit brings the previous image back.
 */

import { MeasuredBoot, confirmRunningImage } from "../boot/stub"
import { Profile } from "../boot/profile"
import { Board } from "../hal/board"
import { UnsupportedError } from "../hal/errors"
import { AgentPhase, UpdateAgent } from "../ota/agent"
import { MessageError } from "./messages"
import { readIdentity, PARTITION_IDENTITY } from "./identity"
import { RateLimiter } from "./ratelimit"
import { runSelfTest, SelfTestResult } from "./selftest"
import { DeviceSession, SessionEvent } from "./session"
import { AuditLog, PARTITION_AUDIT } from "./audit/log"

/**
 * The interface version between the loader and an app bundle. Version 1: `describeApp`,
 * and optionally `createApp` (the running app; the sim runner needs it).
 */
export const APP_ABI = 1

export interface AppContext {
    board: Board
    profile: Profile
    measured: MeasuredBoot
    /** Dial this broker instead of the profile's host and port (`bulwark sim run --broker`). */
    broker?: { host: string; port: number }
    /** Starts background work beside the main loop (a fiber on DeviceScript); the session runs there. */
    spawn?: (task: () => Promise<void>) => void
    /** Diagnostic lines; quiet when absent. Never given key material. */
    log?: (line: string) => void
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

/** A product's own health check; a trial image confirms only when every one passes. */
export interface HealthCheck {
    name: string
    check: (ctx: AppContext) => Promise<boolean>
}

export interface AppOptions {
    healthChecks?: HealthCheck[]
    /** Main-loop period (default 100 ms). */
    tickMs?: number
    /** Telemetry period (default 10 s). */
    telemetryMs?: number
}

export interface AppState {
    deviceId: string | null
    version: string
    slot: string
    trial: boolean
    /** The trial image confirmed itself during this run. */
    confirmed: boolean
    connected: boolean
    update: AgentPhase | "none"
    /** Health checks that failed at the last look ("self-test", "broker", product names). */
    unhealthy: string[]
}

const WATCHDOG_MS = 10000
const AUDIT_ACTOR = "ota-agent"

export class BulwarkApp {
    private readonly ctx: AppContext
    private readonly options: AppOptions
    private session: DeviceSession | null = null
    private agent: UpdateAgent | null = null
    private audit: AuditLog | null = null
    private deviceId: string | null = null
    private selfTest: SelfTestResult = { ok: false, failed: ["not-run"] }
    private stopped = false
    private connectedOnce = false
    private announce = false
    private confirmed = false
    private unhealthy: string[] = []
    private lastTelemetryMs = -1

    constructor(ctx: AppContext, options?: AppOptions) {
        this.ctx = ctx
        this.options = options === undefined ? {} : options
    }

    state(): AppState {
        return {
            deviceId: this.deviceId,
            version: this.ctx.measured.version,
            slot: this.ctx.measured.slot,
            trial: this.ctx.measured.trial,
            confirmed: this.confirmed,
            connected: this.session !== null && this.session.isConnected(),
            update: this.agent === null ? "none" : this.agent.phase(),
            unhealthy: this.unhealthy,
        }
    }

    /** Runs until `stop`, or until the board resets (every HAL call then ends the run). */
    async run(): Promise<void> {
        const board = this.ctx.board
        this.selfTest = runSelfTest(board.crypto)
        if (!this.selfTest.ok) this.log("self-test failed: " + this.selfTest.failed.join(","))
        await this.openAudit()
        await this.connect()
        if (board.watchdog !== undefined) await board.watchdog.start(WATCHDOG_MS)

        const tickMs = this.options.tickMs === undefined ? 100 : this.options.tickMs
        while (!this.stopped) {
            if (board.watchdog !== undefined) board.watchdog.feed()
            if (this.agent !== null) {
                if (this.announce) {
                    this.announce = false
                    await this.agent.announce()
                }
                await this.agent.tick()
            }
            await this.checkTrial()
            await this.telemetry()
            await board.clock.sleep(tickMs)
        }
    }

    /** Ends `run` within one tick and closes the broker session. */
    async stop(): Promise<void> {
        this.stopped = true
        if (this.session !== null) await this.session.stop()
    }

    /** Called by the session on its events; async work is left to the main loop. */
    onSessionEvent(e: SessionEvent): void {
        if (e.event === "connected") {
            this.connectedOnce = true
            this.announce = true
            this.log("connected to the broker")
        } else if (e.event === "connect-failed") {
            this.log("connect failed: " + (e.code === undefined ? "" : e.code))
        }
    }

    /** Reports an agent event to the audit log (event "update"), if the board keeps one. */
    async recordUpdate(event: string, detail: string): Promise<void> {
        this.log(event + " " + detail)
        if (this.audit === null) return
        let outcome = "info"
        if (event === "ota-refused") outcome = "refused"
        else if (event === "ota-reverted") outcome = "failure"
        else if (event === "ota-confirmed") outcome = "success"
        await this.audit.append({
            event: "update",
            actor: AUDIT_ACTOR,
            outcome: outcome,
            detail: event + " " + detail,
        })
    }

    private log(line: string): void {
        if (this.ctx.log !== undefined) this.ctx.log(line)
    }

    private async openAudit(): Promise<void> {
        const board = this.ctx.board
        if (board.flash === undefined || board.secureElement === undefined) return
        if (board.flash.partitionNames().indexOf(PARTITION_AUDIT) < 0) return
        try {
            this.audit = await AuditLog.open({
                partition: board.flash.partition(PARTITION_AUDIT),
                secureElement: board.secureElement,
                crypto: board.crypto,
                clock: board.clock,
            })
        } catch (e) {
            if (e && (e as any).code === "power-loss") throw e
            this.log("audit log unavailable")
        }
    }

    /** Reads the identity, then starts the agent and the session (in the background). */
    private async connect(): Promise<void> {
        const board = this.ctx.board
        const profile = this.ctx.profile
        if (board.flash === undefined || board.secureElement === undefined) return
        const identity = await readIdentity(
            board.crypto,
            board.secureElement,
            board.flash.partition(PARTITION_IDENTITY)
        )
        if (identity === null) {
            this.log("not provisioned: no network, no updates")
            return
        }
        this.deviceId = identity.deviceId
        const transport = {
            brokerHost: profile.transport.brokerHost,
            brokerPort:
                this.ctx.broker === undefined ? profile.transport.brokerPort : this.ctx.broker.port,
            keepAliveSec: profile.transport.keepAliveSec,
            maxPayload: profile.transport.maxPayload,
            queueLimit: profile.transport.queueLimit,
            backoffMinMs: profile.transport.backoffMinMs,
            backoffMaxMs: profile.transport.backoffMaxMs,
        }
        const session = new DeviceSession(
            board,
            {
                deviceId: identity.deviceId,
                caPem: identity.caPem,
                transport: transport,
                connectHost: this.ctx.broker === undefined ? undefined : this.ctx.broker.host,
            },
            sessionListener(this)
        )
        this.session = session
        const limiter = new RateLimiter(profile.rateLimits, board.clock)
        const agent = new UpdateAgent(
            board,
            {
                deviceId: identity.deviceId,
                deviceClass: profile.deviceClass,
                update: profile.update,
                signaturePolicy: profile.boot.signaturePolicy,
                measured: this.ctx.measured,
                admitOffer: admitter(limiter),
                onEvent: agentListener(this),
            },
            sessionIo(session)
        )
        this.agent = agent
        session.route("ota", decodeOtaMessage, otaHandler(agent))
        await agent.start()

        if (this.ctx.spawn === undefined) throw new UnsupportedError("background tasks (spawn)")
        this.ctx.spawn(sessionTask(session))
    }

    /** Confirms a trial image once healthy; restarts it when it cannot be in time. */
    private async checkTrial(): Promise<void> {
        const measured = this.ctx.measured
        if (!measured.trial || this.confirmed) return
        const board = this.ctx.board
        const failing: string[] = []
        if (!this.selfTest.ok) failing.push("self-test")
        if (!this.connectedOnce) failing.push("broker")
        const checks = this.options.healthChecks === undefined ? [] : this.options.healthChecks
        for (let i = 0; i < checks.length; i++)
            if (!(await checks[i].check(this.ctx))) failing.push(checks[i].name)
        this.unhealthy = failing

        if (failing.length === 0) {
            await confirmRunningImage(board, measured)
            this.confirmed = true
            this.log("confirmed " + measured.version)
            if (this.agent !== null) await this.agent.confirmed()
            return
        }
        // A failed self-test will not heal: restart now rather than wait for the deadline.
        const late = board.clock.monotonicMs() >= this.ctx.profile.update.confirmTimeoutMs
        if (!this.selfTest.ok || late) {
            this.log("trial not healthy (" + failing.join(",") + "): restarting")
            if (board.reset === undefined) return
            await board.reset.reboot("revert")
        }
    }

    private async telemetry(): Promise<void> {
        const session = this.session
        if (session === null) return
        const now = this.ctx.board.clock.monotonicMs()
        const period = this.options.telemetryMs === undefined ? 10000 : this.options.telemetryMs
        if (this.lastTelemetryMs >= 0 && now - this.lastTelemetryMs < period) return
        this.lastTelemetryMs = now
        const s = this.state()
        const body = {
            v: 1,
            version: s.version,
            slot: s.slot,
            trial: s.trial && !s.confirmed,
            uptimeMs: now,
            selfTest: this.selfTest.ok,
            update: s.update,
        }
        await session.publish("telemetry", Buffer.from(JSON.stringify(body)), true)
    }
}

/** Starts the running app; the loader finds it as an export of the app bundle. */
export function createApp(ctx: AppContext, options?: AppOptions): BulwarkApp {
    return new BulwarkApp(ctx, options)
}

interface OtaMessage {
    kind: string
    payload: Buffer
}

/**
 * Inbound bulwark/<id>/ota/...: offers and chunks go to the agent; the device's own status
 * and requests come back through its subscription and are ignored; anything else is refused.
 */
function decodeOtaMessage(payload: Buffer, path: string[]): OtaMessage {
    if (path.length !== 1) throw new MessageError("topic", "ota subtopic")
    const kind = path[0]
    if (kind !== "offer" && kind !== "chunk" && kind !== "status" && kind !== "request")
        throw new MessageError("topic", "ota subtopic")
    return { kind: kind, payload: payload }
}

function otaHandler(agent: UpdateAgent): (m: OtaMessage, path: string[]) => Promise<void> {
    return async function (m: OtaMessage, path: string[]): Promise<void> {
        if (m.kind === "offer") await agent.handleOffer(m.payload)
        else if (m.kind === "chunk") await agent.handleChunk(m.payload)
    }
}

function sessionIo(session: DeviceSession) {
    return {
        publish: async function (suffix: string, payload: Buffer, reliable: boolean) {
            await session.publish(suffix, payload, reliable)
        },
    }
}

function sessionTask(session: DeviceSession): () => Promise<void> {
    return async function (): Promise<void> {
        await session.run()
    }
}

function sessionListener(app: BulwarkApp): (e: SessionEvent) => void {
    return function (e: SessionEvent): void {
        app.onSessionEvent(e)
    }
}

function agentListener(app: BulwarkApp): (event: string, detail: string) => Promise<void> {
    return async function (event: string, detail: string): Promise<void> {
        await app.recordUpdate(event, detail)
    }
}

function admitter(limiter: RateLimiter): () => boolean {
    return function (): boolean {
        return limiter.allow("updates")
    }
}
