/**
 * Wires the security services onto a board (GP-TM-08, GP-TM-46, GP-TM-55): the audit log
 * on its partition, the rate limiter from the profile, exports for the device identity,
 * and the local admin console, which stays off unless the device profile enables it.
 */

import { Board, requireCapability } from "../../hal/board"
import { Console } from "../../hal/local"
import { Profile } from "../../boot/profile"
import { EVENTS } from "../audit/chain"
import { ExportContext, ExportSink, serveConsoleExport } from "../audit/export"
import { AuditLog, AuditLogOptions, PARTITION_AUDIT } from "../audit/log"
import { PARTITION_IDENTITY, readIdentity } from "../identity"
import { RateLimiter, describeSummary } from "../ratelimit"
import { AdminConsole, ConsoleCommand } from "./console"
import { LoginPolicy } from "./login"
import { factoryReset, resumeFactoryReset } from "./recovery"
import { AdminStore, PARTITION_SECURE_SETTINGS } from "./store"
import { CheckError } from "../../hal/errors"

/** "disabled": the profile keeps this service off (GP-TM-08). */
export class ServiceError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "ServiceError"
    }
}

export interface SecurityServices {
    audit: AuditLog
    limiter: RateLimiter
    /** Null until the device is provisioned: exports are signed by the identity key. */
    exportContext: ExportContext | null
    deviceId: string
}

function operatorKeys(profile: Profile): Buffer[] {
    const keys = profile.security.operatorKeys ? profile.security.operatorKeys : []
    const out: Buffer[] = []
    for (let i = 0; i < keys.length; i++) out.push(Buffer.from(keys[i], "hex"))
    return out
}

/**
 * Opens the audit log (recovering it after any power cut), records each security
 * override the profile applies, and builds the rate limiter.
 */
export async function startSecurityServices(
    board: Board,
    profile: Profile,
    options?: AuditLogOptions
): Promise<SecurityServices> {
    const flash = requireCapability(board.flash, "flash")
    const se = requireCapability(board.secureElement, "secure element")
    const audit = await AuditLog.open(
        {
            partition: flash.partition(PARTITION_AUDIT),
            secureElement: se,
            crypto: board.crypto,
            clock: board.clock,
        },
        options
    )
    await auditOverrides(audit, profile)
    const limiter = new RateLimiter(profile.rateLimits, board.clock)
    const hasIdentity = flash.partitionNames().indexOf(PARTITION_IDENTITY) >= 0
    const identity = hasIdentity
        ? await readIdentity(board.crypto, se, flash.partition(PARTITION_IDENTITY))
        : null
    const deviceId = identity ? identity.deviceId : "unprovisioned"
    const exportContext: ExportContext | null = identity
        ? {
              log: audit,
              secureElement: se,
              crypto: board.crypto,
              clock: board.clock,
              deviceId: identity.deviceId,
              operatorKeys: operatorKeys(profile),
              recentNonces: [],
          }
        : null
    return { audit: audit, limiter: limiter, exportContext: exportContext, deviceId: deviceId }
}

/** One "security-override" record per override the profile applies, at every start-up. */
export async function auditOverrides(audit: AuditLog, profile: Profile): Promise<void> {
    const overrides = profile.security.overrides
    for (let i = 0; i < overrides.length; i++) {
        const name = overrides[i]
        const enabled = name === "console" ? profile.services.console : profile.services.debugPort
        await audit.append({
            event: EVENTS.override,
            actor: "profile",
            outcome: "info",
            detail: "override=" + name + " enabled=" + (enabled ? "true" : "false"),
        })
    }
}

/** Appends the rate limiter's summary when one is due: one record, not one per drop. */
export async function recordRateSummary(
    services: SecurityServices,
    force?: boolean
): Promise<boolean> {
    const summary = services.limiter.takeSummary(force)
    if (summary === null) return false
    await services.audit.append({
        event: EVENTS.rateLimit,
        actor: "device",
        outcome: "refused",
        detail: describeSummary(summary),
    })
    return true
}

export interface ConsoleOptions {
    policy?: LoginPolicy
    /** PBKDF2 iterations of new owner-password hashes. */
    iterations?: number
    /** Commands of other services for the logged-in owner (see ConsoleCommand). */
    commands?: ConsoleCommand[]
}

/**
 * The admin console for this boot. Refused (ServiceError "disabled") unless the profile
 * enables it; in recovery mode when the board's button is held now, at boot. A factory
 * reset a power cut interrupted is finished first.
 */
export async function openAdminConsole(
    board: Board,
    profile: Profile,
    services: SecurityServices,
    options?: ConsoleOptions
): Promise<AdminConsole> {
    if (!profile.services.console)
        throw new ServiceError("disabled", "the console is off in the device profile")
    const flash = requireCapability(board.flash, "flash")
    const se = requireCapability(board.secureElement, "secure element")
    const store = new AdminStore(flash.partition(PARTITION_SECURE_SETTINGS))
    await store.load()
    const resetDeps = { flash: flash, store: store, audit: services.audit, secureElement: se }
    await resumeFactoryReset(resetDeps)
    const recovery = board.button ? await board.button.held() : false
    const ctx = services.exportContext
    const hasIdentity = flash.partitionNames().indexOf(PARTITION_IDENTITY) >= 0
    return await AdminConsole.start(
        {
            crypto: board.crypto,
            clock: board.clock,
            rng: board.rng,
            store: store,
            audit: services.audit,
            limiter: services.limiter,
            setupCode: async () => {
                if (!hasIdentity) return null
                const id = await readIdentity(board.crypto, se, flash.partition(PARTITION_IDENTITY))
                return id ? id.setupCode : null
            },
            deviceId: services.deviceId,
            deviceClass: profile.deviceClass,
            exportLog:
                ctx === null
                    ? null
                    : async (actor: string, sink: ExportSink) => {
                          await serveConsoleExport(ctx, actor, board.rng.bytes(16), sink)
                      },
            factoryReset: recovery
                ? async (actor: string) => {
                      await factoryReset(resetDeps, actor)
                  }
                : null,
            policy: options ? options.policy : undefined,
            iterations: options ? options.iterations : undefined,
            commands: options ? options.commands : undefined,
        },
        recovery
    )
}

/** Serves the console over a HAL Console channel until it closes. */
export async function runConsole(channel: Console, admin: AdminConsole): Promise<void> {
    const out = async (line: string) => {
        await channel.writeLine(line)
    }
    const greeting = admin.greeting()
    for (let i = 0; i < greeting.length; i++) await out(greeting[i])
    while (!admin.isClosed()) {
        const line = await channel.readLine()
        if (line === null) return
        await admin.handle(line, out)
    }
}
