/**
 * The application the boot stub hands control to (DESIGN.md section 6; GP-TM-16, 18, 19, 20):
 * it runs its self-test, starts the security services (audit log with the boot decision and
 * overrides, rate limits, operator-signed audit export, the console when enabled; GP-TM-08,
 * 46, 55), connects to the broker over mutual TLS, sends telemetry, runs the update agent,
 * and on a trial boot confirms the new image only when its health checks pass within
 * update.confirmTimeoutMs; otherwise it restarts, and the stub brings the previous image back.
 * It answers attestation requests (GP-TM-56) and zeroizes its keys when tampered (GP-TM-31).
 * Its telemetry, update status reports, owner readings and privacy replies are signed by the
 * identity key in the secure element, in `publish` (GP-TM-41). It takes renewed certificates over the network and tries them before
 * it drops the previous one (src/app-renewal.ts; GP-TM-35).
 */

import { MeasuredBoot, confirmRunningImage } from "../boot/stub"
import { Profile } from "../boot/profile"
import { Board } from "../hal/board"
import { UnsupportedError, isPowerLoss } from "../hal/errors"
import { AgentPhase, UpdateAgent } from "../ota/agent"
import { AdminConsole, ConsoleCommand } from "./admin/console"
import { SecurityServices, recordRateSummary, startSecurityServices } from "./admin/service"
import { attestContext, attestDecoder, attestHandler, refuseZeroized } from "./app-attest"
import { respondToTamper } from "./app-attest"
import { bootEntry, publishToken, sessionEntry, REJECTED_SOURCE } from "./app-audit"
import { consoleEnabled, serveConsole } from "./app-console"
import { appPublisher, consoleTask, dataSender, newAgent, newSession } from "./app-hooks"
import { auditQueue, ownerProbe, sessionTask } from "./app-hooks"
import { openPrivacy, privacyDecoder, privacyHandler, privacyTelemetry } from "./app-privacy"
import { PURGE_PERIOD_MS } from "./app-privacy"
import { healthBody, topicPayload } from "./app-telemetry"
import { auditDecoder, auditHandler, otaDecoder, otaHandler } from "./app-routes"
import { certDecoder, certHandler, newRenewalTrial, noteRenewalEvent } from "./app-renewal"
import { renewalContext, settleRenewal } from "./app-renewal"
import { AuditEntry } from "./audit/record"
import { readIdentity, PARTITION_IDENTITY } from "./identity"
import { privacyConsoleCommand, RightsDeps } from "./privacy/rights"
import { RateLimiter } from "./ratelimit"
import { runSelfTest, SelfTestResult } from "./selftest"
import { DeviceSession, SessionEvent } from "./session"
import { TelemetrySigner } from "./telemetry"
import { AuditLog, PARTITION_AUDIT } from "./audit/log"
import { RenewalContext } from "./renewal"

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
    /** Shortest span between two rate-limit summaries in the audit log (default 60 s). */
    rateSummaryMs?: number
    /**
     * The product's owner readings (personal data, category "telemetry" of the privacy
     * inventory): asked each telemetry period only while the owner's consent allows.
     */
    readings?: () => Promise<{ [name: string]: unknown } | null>
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
    /** The tamper response ran, or the identity key was found zeroized: no network. */
    tampered: boolean
}

const WATCHDOG_MS = 10000
const AUDIT_ACTOR = "ota-agent"
/** Session events waiting for the main loop to write them (the session calls back in sync). */
const MAX_PENDING_AUDIT = 32

export class BulwarkApp {
    private readonly ctx: AppContext
    private readonly options: AppOptions
    private session: DeviceSession | null = null
    private agent: UpdateAgent | null = null
    private audit: AuditLog | null = null
    private services: SecurityServices | null = null
    private limiter: RateLimiter | null = null
    private pendingAudit: AuditEntry[] = []
    private failureRecorded = false
    private admin: AdminConsole | null = null
    private privacy: RightsDeps | null = null
    private lastPurgeMs = 0
    private readonly exportGate = { busy: false }
    private deviceId: string | null = null
    private selfTest: SelfTestResult = { ok: false, failed: ["not-run"] }
    private stopped = false
    private connectedOnce = false
    private announce = false
    private confirmed = false
    private unhealthy: string[] = []
    private lastTelemetryMs = -1
    /** Signs what `publish` sends signed; null on a board without secure element. */
    private signer: TelemetrySigner | null = null
    private tampered = false
    private renewal: RenewalContext | null = null
    private readonly renewalTrial = newRenewalTrial()

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
            tampered: this.tampered,
        }
    }

    /** Runs until `stop`, or until the board resets (every HAL call then ends the run). */
    async run(): Promise<void> {
        const board = this.ctx.board
        this.selfTest = runSelfTest(board.crypto)
        if (!this.selfTest.ok) this.log("self-test failed: " + this.selfTest.failed.join(","))
        await this.startServices()
        await this.checkTamper()
        if (!this.tampered) await this.connect()
        this.startConsole()
        if (board.watchdog !== undefined) await board.watchdog.start(WATCHDOG_MS)

        const tickMs = this.options.tickMs === undefined ? 100 : this.options.tickMs
        while (!this.stopped) {
            if (board.watchdog !== undefined) board.watchdog.feed()
            await this.checkTamper()
            if (this.agent !== null) {
                if (this.announce) {
                    this.announce = false
                    await this.agent.announce()
                }
                await this.agent.tick()
            }
            if (!this.tampered) await this.checkTrial()
            await this.settleRenewal()
            await this.telemetry()
            await this.writeAudit()
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
        noteRenewalEvent(this.renewalTrial, e)
        const entry = sessionEntry(e, !this.failureRecorded)
        if (e.event === "connect-failed") this.failureRecorded = true
        if (e.event === "connected") this.failureRecorded = false
        if (entry === null || this.audit === null) return
        // A flood of bad messages costs tokens: past the limit it is counted, not recorded.
        const limiter = this.limiter
        if (e.event === "inbound-rejected" || e.event === "inbound-failed")
            if (limiter !== null && !limiter.allow("commands", REJECTED_SOURCE)) return
        if (this.pendingAudit.length < MAX_PENDING_AUDIT) this.pendingAudit.push(entry)
    }

    /** The admin console of the operator session now open (null when none is). */
    adminConsole(): AdminConsole | null {
        return this.admin
    }

    /**
     * Sends on bulwark/<id>/<suffix> after a "publishes" token (GP-TM-46): `wait` for one
     * briefly (protocol messages) or drop at once (telemetry). The one place messages are
     * signed (GP-TM-41): on a topic of SIGNED_TOPICS (telemetry, ota/status, data/telemetry,
     * privacy/reply) the payload goes in its envelope under that topic's label, all in one
     * (boot, seq) order; one the element cannot sign, or over transport.maxPayload, is not
     * sent. False: dropped (no token, or not signed).
     */
    async publish(suffix: string, payload: Buffer, reliable: boolean, wait: boolean) {
        const session = this.session
        if (session === null || this.tampered) return false
        if (this.limiter !== null) {
            const clock = this.ctx.board.clock
            if (!(await publishToken(this.limiter, clock, wait))) return false
        }
        const maxPayload = this.ctx.profile.transport.maxPayload
        const out = await topicPayload(this.signer, suffix, payload, maxPayload, this.ctx.log)
        if (out === null) return false
        await session.publish(suffix, out, reliable)
        return true
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

    /**
     * Opens the audit log (recovering it after a power cut), records the security
     * overrides and this boot, and builds the rate limiter (src/admin/service.ts). A board
     * without flash, secure element or audit partition runs without them.
     */
    private async startServices(): Promise<void> {
        const board = this.ctx.board
        const profile = this.ctx.profile
        const limits = { summaryPeriodMs: this.options.rateSummaryMs }
        if (board.flash === undefined || board.secureElement === undefined) return
        if (board.flash.partitionNames().indexOf(PARTITION_AUDIT) < 0) {
            this.limiter = new RateLimiter(profile.rateLimits, board.clock, limits)
            return
        }
        try {
            const services = await startSecurityServices(board, profile)
            services.limiter = new RateLimiter(profile.rateLimits, board.clock, limits)
            this.services = services
            this.audit = services.audit
            this.limiter = services.limiter
            await services.audit.append(bootEntry(this.ctx.measured))
        } catch (e) {
            if (isPowerLoss(e)) throw e
            this.log("audit log unavailable")
            if (this.limiter === null)
                this.limiter = new RateLimiter(profile.rateLimits, board.clock, limits)
        }
    }

    /** Writes the session's queued events and, when one is due, the rate-limit summary. */
    private async writeAudit(): Promise<void> {
        const audit = this.audit
        if (audit === null || this.exportGate.busy) return
        while (this.pendingAudit.length > 0) {
            const entry = this.pendingAudit[0]
            this.pendingAudit = this.pendingAudit.slice(1)
            await audit.append(entry)
        }
        if (this.services !== null) await recordRateSummary(this.services)
    }

    /** Starts the console sessions beside the main loop when profile and board have one. */
    private startConsole(): void {
        const services = this.services
        if (services === null || !consoleEnabled(this.ctx.board, this.ctx.profile)) return
        if (this.ctx.spawn === undefined) throw new UnsupportedError("background tasks (spawn)")
        this.ctx.spawn(consoleTask(this, services))
    }

    /** One console session after another until stopped (src/app-console.ts). */
    async serveConsole(services: SecurityServices): Promise<void> {
        await serveConsole(this.ctx.board, this.ctx.profile, services, this)
    }

    /** The console of the operator session that starts now (src/app-console.ts). */
    setAdminConsole(admin: AdminConsole): void {
        this.admin = admin
    }

    isStopped(): boolean {
        return this.stopped
    }

    /** Commands of other services the console offers to the logged-in owner. */
    consoleCommands(): ConsoleCommand[] {
        return this.privacy === null ? [] : [privacyConsoleCommand(this.privacy)]
    }

    /** The console's session check, for the privacy rights (docs/privacy.md). */
    ownerLoggedIn(): boolean {
        return this.admin !== null && this.admin.ownerLoggedIn()
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
            await this.noIdentity()
            return
        }
        this.deviceId = identity.deviceId
        this.signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock,
            identity.deviceId)
        const session = newSession(board, profile, this.ctx.broker, identity, this)
        this.session = session
        const limiter =
            this.limiter === null ? new RateLimiter(profile.rateLimits, board.clock) : this.limiter
        this.limiter = limiter
        const agent = newAgent(board, profile, this.ctx.measured, identity.deviceId, limiter, this)
        this.agent = agent
        const io = appPublisher(this)
        session.route("ota", otaDecoder(limiter), otaHandler(agent))
        const services = this.services
        if (services !== null && services.exportContext !== null)
            session.route("audit", auditDecoder(limiter), auditHandler(services.exportContext, io,
                this.exportGate))
        const attest = attestContext(board, identity.deviceId, services, this.ctx.measured,
            this.selfTest)
        if (attest !== null)
            session.route("attest", attestDecoder(limiter), attestHandler(attest, io, auditQueue(this)))
        const renewal = renewalContext(board, identity.deviceId, services)
        this.renewal = renewal
        this.renewalTrial.onTrial = identity.previousCertificatePem !== undefined
        if (renewal !== null) session.route("cert", certDecoder(limiter),
            certHandler(renewal, io, auditQueue(this), this.renewalTrial, session))
        const privacy = await openPrivacy(board, profile, this.audit, identity.deviceId,
            ownerProbe(this))
        this.privacy = privacy
        if (privacy !== null) session.route("privacy", privacyDecoder(limiter),
            privacyHandler(privacy, io))
        await agent.start()

        if (this.ctx.spawn === undefined) throw new UnsupportedError("background tasks (spawn)")
        this.ctx.spawn(sessionTask(session))
    }

    /** A renewed certificate on trial is confirmed or reverted once a connection tells. */
    private async settleRenewal(): Promise<void> {
        const session = this.session
        if (this.renewal === null || session === null || this.tampered) return
        await settleRenewal(this.renewal, this.renewalTrial, appPublisher(this), auditQueue(this),
            session)
    }

    /** Queues an audit record for the main loop (it waits while an export streams). */
    queueAudit(entry: AuditEntry): void {
        if (this.audit !== null && this.pendingAudit.length < MAX_PENDING_AUDIT)
            this.pendingAudit.push(entry)
    }

    /**
     * Polls the tamper switch; when the enclosure is open: the queued records, then the
     * tamper response (src/app-attest.ts), then the session and the update agent are
     * closed. The app stays up and sends nothing; the keys are gone (GP-TM-31).
     */
    private async checkTamper(): Promise<void> {
        const tamper = this.ctx.board.tamper
        if (this.tampered || tamper === undefined || !(await tamper.triggered())) return
        this.tampered = true
        try {
            await this.writeAudit()
        } catch (e) {
            // Nothing but a power cut may keep the keys from being wiped.
            if (isPowerLoss(e)) throw e
        }
        const detail = await respondToTamper(this.ctx.board, this.audit)
        this.log("tamper: " + detail)
        // The audit MAC key is gone with the rest: the log re-keys at the next start.
        this.audit = null
        this.services = null
        this.agent = null
        const session = this.session
        this.session = null
        if (session !== null) await session.stop()
    }

    /** Not provisioned, or its identity key zeroized by a tamper response: no network. */
    private async noIdentity(): Promise<void> {
        const zeroized = await refuseZeroized(this.ctx.board, this.audit)
        if (zeroized) this.tampered = true
        this.log(zeroized ? "identity key zeroized (tamper response): refusing to connect"
            : "not provisioned: no network, no updates")
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
        const body = healthBody({
            version: s.version,
            slot: s.slot,
            trial: s.trial && !s.confirmed,
            uptimeMs: now,
            selfTest: this.selfTest.ok,
            update: s.update,
        })
        await this.publish("telemetry", body, true, false)
        const privacy = this.privacy
        if (privacy === null) return
        await privacyTelemetry(privacy.manager, this.options.readings, dataSender(this, session))
        if (now - this.lastPurgeMs < PURGE_PERIOD_MS) return
        this.lastPurgeMs = now
        await privacy.manager.purgeExpired()
    }
}

/** Starts the running app; the loader finds it as an export of the app bundle. */
export function createApp(ctx: AppContext, options?: AppOptions): BulwarkApp {
    return new BulwarkApp(ctx, options)
}
