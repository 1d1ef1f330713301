/**
 * The local admin console's dialogue (docs/admin.md; GP-TM-22, GP-TM-25, GP-TM-26,
 * GP-TM-53): a pure state machine fed one line at a time, with I/O injected. First login
 * only with the setup code, then a forced owner-password change; answers never say which
 * part of a credential was wrong, and errors carry no detail from inside the device.
 */

import { Clock, Rng } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { PowerLoss } from "../../hal/errors"
import { EVENTS } from "../audit/chain"
import { ExportSink } from "../audit/export"
import { AuditLog } from "../audit/log"
import { uintText } from "../audit/record"
import {
    PBKDF2_DEFAULT_ITERATIONS,
    Pause,
    SALT_LENGTH,
    checkPasswordPolicy,
    hashPassword,
    verifyPassword,
} from "../credentials"
import { SetupCodeHash } from "../identity"
import { RateLimiter } from "../ratelimit"
import {
    DEFAULT_LOGIN_POLICY,
    LoginPolicy,
    OWNER,
    attemptLogin,
    backoffMs,
    isLocked,
} from "./login"
import { AdminStore } from "./store"

/**
 * A command another service adds to the owner's session (e.g. "privacy ..."): it sees the
 * whole line and only runs while the owner is logged in. Its replies follow GP-TM-53 too.
 */
export interface ConsoleCommand {
    word: string
    handle: (line: string) => Promise<string[]>
}

export interface ConsoleDeps {
    crypto: Crypto
    clock: Clock
    rng: Rng
    store: AdminStore
    audit: AuditLog | null
    limiter: RateLimiter
    /** The device's stored setup-code hash (src/identity.ts), null when not provisioned. */
    setupCode: () => Promise<SetupCodeHash | null>
    deviceId: string
    deviceClass: string
    /** Streams an audit export for `actor`; null when the device cannot sign one. */
    exportLog: ((actor: string, sink: ExportSink) => Promise<void>) | null
    /** The factory reset (recovery mode only). */
    factoryReset: ((actor: string) => Promise<void>) | null
    policy?: LoginPolicy
    /** PBKDF2 iterations for new owner-password hashes. */
    iterations?: number
    /** Commands of other services, offered to the logged-in owner. */
    commands?: ConsoleCommand[]
}

/** Where reply lines go (the HAL Console's writeLine, or a test's array). */
export type LineSink = (line: string) => Promise<void>

/** Replies are fixed strings: nothing in them depends on which credential part failed. */
export const REPLIES = {
    loginFailed: "login failed",
    locked: "console locked: hold the button while the device boots to recover",
    loggedOut: "logged out",
    internal: "error: internal",
    unknown: "error: unknown command",
    needLogin: "error: log in first",
    idleLogout: "logged out: idle too long",
}

/**
 * A session with no line typed for this long is logged out (GP-TM-25), whatever the
 * profile: 5 minutes on the board's monotonic clock.
 */
export const CONSOLE_IDLE_MS = 300000

const HELP_IDLE = ["commands: login, help"]
const HELP_READY = ["commands: passwd, audit-export, whoami, logout, help"]
const HELP_RECOVERY = ["commands: factory-reset, exit"]
const EXPORT_LINE_BYTES = 48

/** Array concat without Array.prototype.concat, which DeviceScript lacks. */
function joinLines(a: string[], b: string[]): string[] {
    const out = a.slice(0)
    for (let i = 0; i < b.length; i++) out.push(b[i])
    return out
}

type Mode =
    | "idle"
    | "user"
    | "password"
    | "current"
    | "new-password"
    | "repeat"
    | "ready"
    | "recovery"
    | "confirm-reset"
    | "closed"

export class AdminConsole {
    private mode: Mode
    private user = ""
    private setupCodeTyped = ""
    private candidate = ""
    private firstSetup = false
    private notBeforeMs = 0
    /** Monotonic time of the last line typed (or of the start). */
    private lastLineMs = 0
    private readonly policy: LoginPolicy
    private readonly iterations: number

    private constructor(
        private readonly deps: ConsoleDeps,
        recovery: boolean
    ) {
        this.mode = recovery ? "recovery" : "idle"
        this.policy = deps.policy ? deps.policy : DEFAULT_LOGIN_POLICY
        this.iterations = deps.iterations ? deps.iterations : PBKDF2_DEFAULT_ITERATIONS
    }

    /**
     * Loads the persisted state. After a reboot the backoff for the stored failure count
     * starts again from boot, so power-cycling never shortens a wait.
     */
    static async start(deps: ConsoleDeps, recovery: boolean): Promise<AdminConsole> {
        const c = new AdminConsole(deps, recovery)
        c.lastLineMs = deps.clock.monotonicMs()
        const state = await deps.store.load()
        c.notBeforeMs = deps.clock.monotonicMs() + backoffMs(c.policy, state.failures)
        if (recovery)
            await c.audit(EVENTS.recovery, "console:physical", "info", "button held at boot")
        return c
    }

    greeting(): string[] {
        if (this.mode === "recovery")
            return joinLines(
                [
                    "bulwark recovery (button held at boot)",
                    "factory-reset wipes the owner password and user data; the identity stays",
                ],
                HELP_RECOVERY
            )
        return joinLines(["bulwark console " + this.deps.deviceId], HELP_IDLE)
    }

    isClosed(): boolean {
        return this.mode === "closed"
    }

    /**
     * True while the owner is logged in (other services check it before acting); false as
     * soon as the session has been idle for CONSOLE_IDLE_MS, even before `expireIdle` ran.
     */
    ownerLoggedIn(): boolean {
        return this.mode === "ready" && !this.idleTooLong()
    }

    private idleTooLong(): boolean {
        return this.deps.clock.monotonicMs() - this.lastLineMs >= CONSOLE_IDLE_MS
    }

    /**
     * Ends a session idle for CONSOLE_IDLE_MS: an owner logged in (or changing the
     * password) is logged out and audited ("logout", detail "reason=idle"); a half-typed
     * login or reset confirmation is dropped. True when it ended something. `handle` runs
     * it before each line; a host may also call it on a timer to log out without input.
     */
    async expireIdle(): Promise<boolean> {
        if (!this.idleTooLong()) return false
        const m = this.mode
        if (m === "idle" || m === "recovery" || m === "closed") return false
        this.clearSecrets()
        this.user = ""
        this.firstSetup = false
        this.mode = m === "confirm-reset" ? "recovery" : "idle"
        const owner = m === "ready" || m === "current" || m === "new-password" || m === "repeat"
        if (owner) await this.audit(EVENTS.logout, "console:owner", "info", "reason=idle")
        return true
    }

    /**
     * Handles one line, writing the replies to `out`; never throws and never lets an
     * internal error's message, path or stack reach the operator (GP-TM-53).
     */
    async handle(line: string, out: LineSink): Promise<void> {
        let replies: string[]
        try {
            // A line after the idle limit is not run: the session it was meant for is over.
            if (await this.expireIdle()) replies = [REPLIES.idleLogout]
            else {
                this.lastLineMs = this.deps.clock.monotonicMs()
                replies = await this.dispatch(line, out)
            }
            this.lastLineMs = this.deps.clock.monotonicMs()
        } catch (e) {
            // A power cut ends this run of the device; nothing may carry on after it.
            if (e instanceof PowerLoss) throw e
            this.clearSecrets()
            if (this.mode !== "recovery" && this.mode !== "confirm-reset" && this.mode !== "closed")
                this.mode = this.mode === "ready" ? "ready" : "idle"
            replies = [REPLIES.internal]
        }
        for (let i = 0; i < replies.length; i++) await out(replies[i])
    }

    /** Lets a long PBKDF2 run yield (DeviceScript stops long loops without an await). */
    private pause(): Pause {
        const clock = this.deps.clock
        return async function () {
            await clock.sleep(0)
        }
    }

    private clearSecrets(): void {
        this.candidate = ""
        this.setupCodeTyped = ""
    }

    private async audit(event: string, actor: string, outcome: string, detail: string) {
        if (this.deps.audit !== null)
            await this.deps.audit.append({ event: event, actor: actor, outcome: outcome, detail })
    }

    private async dispatch(line: string, out: LineSink): Promise<string[]> {
        const word = line.trim()
        if (this.mode === "user") {
            this.user = word
            this.mode = "password"
            return ["password:"]
        }
        if (this.mode === "password") return await this.login(line)
        if (this.mode === "current") return await this.checkCurrent(line)
        if (this.mode === "new-password") return await this.choosePassword(line)
        if (this.mode === "repeat") return await this.repeatPassword(line)
        if (this.mode === "confirm-reset") return await this.confirmReset(word)
        if (this.mode === "recovery") return this.recoveryCommand(word)
        if (this.mode === "ready") return await this.ownerCommand(word, out)
        if (this.mode === "closed") return []
        if (word === "help" || word === "") return HELP_IDLE
        if (word === "login") {
            if (isLocked(this.policy, this.deps.store.state())) return [REPLIES.locked]
            this.mode = "user"
            return ["user:"]
        }
        return [REPLIES.needLogin]
    }

    private async login(secret: string): Promise<string[]> {
        const user = this.user
        this.user = ""
        this.mode = "idle"
        const result = await attemptLogin(
            {
                crypto: this.deps.crypto,
                clock: this.deps.clock,
                store: this.deps.store,
                limiter: this.deps.limiter,
                policy: this.policy,
                setupCode: this.deps.setupCode,
            },
            user,
            secret,
            this.notBeforeMs
        )
        const known = user === OWNER ? "user=owner" : "user=(unknown)"
        if (result.outcome === "locked") return [REPLIES.locked]
        if (result.outcome === "wait" || result.outcome === "rate-limited") {
            const seconds = Math.ceil(result.waitMs / 1000)
            return ["login refused: try again in " + uintText(seconds) + " s"]
        }
        if (result.outcome === "failed") {
            const wait = backoffMs(this.policy, result.failures)
            this.notBeforeMs = this.deps.clock.monotonicMs() + wait
            const detail = known + " failures=" + uintText(result.failures)
            await this.audit(EVENTS.login, "console", "failure", detail)
            if (result.failures >= this.policy.lockAfter) {
                await this.audit(EVENTS.account, "console", "info", "console locked")
                return [REPLIES.loginFailed, REPLIES.locked]
            }
            return [REPLIES.loginFailed]
        }
        this.notBeforeMs = 0
        await this.audit(EVENTS.login, "console", "success", known + " method=" + result.outcome)
        if (result.outcome === "setup-code") {
            this.setupCodeTyped = secret
            this.firstSetup = true
            this.mode = "new-password"
            return [
                "setup code accepted: choose the owner password (12 to 128 characters)",
                "new password:",
            ]
        }
        this.mode = "ready"
        return joinLines(["welcome, owner"], HELP_READY)
    }

    private async ownerCommand(word: string, out: LineSink): Promise<string[]> {
        if (word === "help" || word === "") return HELP_READY
        if (word === "whoami") return [OWNER]
        if (word === "logout") {
            this.mode = "idle"
            await this.audit(EVENTS.logout, "console:owner", "info", "")
            return [REPLIES.loggedOut]
        }
        if (word === "passwd") {
            this.firstSetup = false
            this.mode = "current"
            return ["current password:"]
        }
        if (word === "audit-export") return await this.exportLines(out)
        const extra = this.deps.commands ? this.deps.commands : []
        const first = word.split(" ")[0]
        for (let i = 0; i < extra.length; i++)
            if (extra[i].word === first) return await extra[i].handle(word)
        return [REPLIES.unknown]
    }

    /** Changing the password needs the current one; a wrong one counts as a failed login. */
    private async checkCurrent(secret: string): Promise<string[]> {
        this.user = OWNER
        const replies = await this.login(secret)
        if (this.mode === "ready") {
            this.mode = "new-password"
            return ["new password:"]
        }
        return replies
    }

    private async choosePassword(candidate: string): Promise<string[]> {
        const verdict = checkPasswordPolicy(candidate, {
            deviceId: this.deps.deviceId,
            deviceClass: this.deps.deviceClass,
            setupCode: this.setupCodeTyped,
            username: OWNER,
        })
        if (!verdict.ok) {
            const detail = "reason=" + verdict.reason
            await this.audit(EVENTS.passwordChange, "console:owner", "refused", detail)
            return ["refused: " + verdict.reason, "new password:"]
        }
        const current = this.deps.store.state().ownerPassword
        const pause = this.pause()
        if (current !== null && (await verifyPassword(this.deps.crypto, current, candidate, pause)))
            return ["refused: same-as-current", "new password:"]
        this.candidate = candidate
        this.mode = "repeat"
        return ["repeat:"]
    }

    private async repeatPassword(again: string): Promise<string[]> {
        if (again !== this.candidate) {
            this.candidate = ""
            this.mode = "new-password"
            return ["refused: the two entries differ", "new password:"]
        }
        const salt = this.deps.rng.bytes(SALT_LENGTH)
        const record = await hashPassword(
            this.deps.crypto,
            salt,
            this.candidate,
            this.iterations,
            this.pause()
        )
        const state = this.deps.store.state()
        await this.deps.store.save({
            seq: state.seq,
            failures: 0,
            ownerPassword: record,
            setupUsed: true,
            resetPending: false,
        })
        this.clearSecrets()
        const how = this.firstSetup ? "first-setup" : "changed"
        this.firstSetup = false
        await this.audit(EVENTS.passwordChange, "console:owner", "success", how)
        this.mode = "ready"
        return joinLines(["owner password set"], HELP_READY)
    }

    /** Streams the export as hex lines between "export-begin" and "export-end". */
    private async exportLines(out: LineSink): Promise<string[]> {
        if (this.deps.exportLog === null) return ["error: export unavailable"]
        await out("export-begin")
        await this.deps.exportLog("console:owner", async (piece: Buffer) => {
            for (let i = 0; i < piece.length; i += EXPORT_LINE_BYTES)
                await out("export " + piece.slice(i, i + EXPORT_LINE_BYTES).toString("hex"))
        })
        return ["export-end"]
    }

    private recoveryCommand(word: string): string[] {
        if (word === "exit") {
            this.mode = "closed"
            return ["bye"]
        }
        if (word === "factory-reset") {
            this.mode = "confirm-reset"
            return ["type the device id to confirm (" + this.deps.deviceId + "):"]
        }
        return HELP_RECOVERY
    }

    private async confirmReset(word: string): Promise<string[]> {
        if (word !== this.deps.deviceId || this.deps.factoryReset === null) {
            this.mode = "recovery"
            return ["factory reset cancelled"]
        }
        await this.deps.factoryReset("console:physical")
        this.mode = "closed"
        return ["factory reset done: log in with the setup code", "rebooting"]
    }
}
