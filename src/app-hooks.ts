/**
 * The small closures the running app (src/app.ts) hands to the session, the update agent
 * and its background tasks. They live outside any class so no arrow function uses `this`
 * (DESIGN.md section 4); `AppHost` is the part of BulwarkApp they call. Also builds the
 * broker session and the update agent from the device profile.
 */

import { Profile } from "../boot/profile"
import { MeasuredBoot } from "../boot/stub"
import { Board } from "../hal/board"
import { UpdateAgent } from "../ota/agent"
import { SecurityServices } from "./admin/service"
import { AppPublish } from "./app-routes"
import { AuditEntry } from "./audit/record"
import { RateLimiter } from "./ratelimit"
import { DeviceSession, SessionEvent } from "./session"

export interface AppHost {
    /** Sends on bulwark/<id>/<suffix>, signed when the topic is (src/app-telemetry.ts). */
    publish(suffix: string, payload: Buffer, reliable: boolean, wait: boolean): Promise<boolean>
    onSessionEvent(e: SessionEvent): void
    recordUpdate(event: string, detail: string): Promise<void>
    serveConsole(services: SecurityServices): Promise<void>
    ownerLoggedIn(): boolean
    queueAudit(entry: AuditEntry): void
}

/** Hands audit records to the main loop, which writes them outside an export. */
export function auditQueue(app: AppHost): (entry: AuditEntry) => void {
    return function (entry: AuditEntry): void {
        app.queueAudit(entry)
    }
}

/** The console's session check, asked by the privacy rights at each console line. */
export function ownerProbe(app: AppHost): () => boolean {
    return function (): boolean {
        return app.ownerLoggedIn()
    }
}

/**
 * Sends one item of personal data on data/telemetry: only while connected (no offline
 * queue, docs/privacy.md), after a publish token and signed (GP-TM-41); false (no token,
 * or the element cannot sign it) leaves it held.
 */
export function dataSender(app: AppHost, session: DeviceSession): (p: Buffer) => Promise<boolean> {
    return async function (payload: Buffer): Promise<boolean> {
        if (!session.isConnected()) return false
        return await app.publish("data/telemetry", payload, false, false)
    }
}

/**
 * The agent's I/O: its protocol messages wait briefly for a publish token; its status
 * reports (ota/status) are signed in the app's publish path like every signed topic
 * (docs/update-format.md, GP-TM-41), and one it cannot sign is not sent.
 */
export function sessionIo(publish: AppPublish) {
    return {
        publish: async function (suffix: string, payload: Buffer, reliable: boolean) {
            await publish(suffix, payload, reliable)
        },
    }
}

/** The app's rate-limited publish for protocol messages (update status, replies, exports). */
export function appPublisher(app: AppHost): AppPublish {
    return async function (suffix: string, payload: Buffer, reliable: boolean): Promise<void> {
        await app.publish(suffix, payload, reliable, true)
    }
}

export function consoleTask(app: AppHost, services: SecurityServices): () => Promise<void> {
    return async function (): Promise<void> {
        await app.serveConsole(services)
    }
}

export function sessionTask(session: DeviceSession): () => Promise<void> {
    return async function (): Promise<void> {
        await session.run()
    }
}

export function sessionListener(app: AppHost): (e: SessionEvent) => void {
    return function (e: SessionEvent): void {
        app.onSessionEvent(e)
    }
}

export function agentListener(app: AppHost): (event: string, detail: string) => Promise<void> {
    return async function (event: string, detail: string): Promise<void> {
        await app.recordUpdate(event, detail)
    }
}

export function admitter(limiter: RateLimiter): () => boolean {
    return function (): boolean {
        return limiter.allow("updates")
    }
}

/** The broker session of a provisioned device; `broker` overrides the profile's address. */
export function newSession(
    board: Board,
    profile: Profile,
    broker: { host: string; port: number } | undefined,
    identity: { deviceId: string; caPem: string },
    app: AppHost
): DeviceSession {
    const t = profile.transport
    const transport = {
        brokerHost: t.brokerHost,
        brokerPort: broker === undefined ? t.brokerPort : broker.port,
        keepAliveSec: t.keepAliveSec,
        maxPayload: t.maxPayload,
        queueLimit: t.queueLimit,
        backoffMinMs: t.backoffMinMs,
        backoffMaxMs: t.backoffMaxMs,
    }
    return new DeviceSession(
        board,
        {
            deviceId: identity.deviceId,
            caPem: identity.caPem,
            transport: transport,
            connectHost: broker === undefined ? undefined : broker.host,
        },
        sessionListener(app)
    )
}

/** The update agent; offers are admitted by the "updates" rate limit (GP-TM-46). */
export function newAgent(
    board: Board,
    profile: Profile,
    measured: MeasuredBoot,
    deviceId: string,
    limiter: RateLimiter,
    app: AppHost
): UpdateAgent {
    return new UpdateAgent(
        board,
        {
            deviceId: deviceId,
            deviceClass: profile.deviceClass,
            update: profile.update,
            signaturePolicy: profile.boot.signaturePolicy,
            measured: measured,
            admitOffer: admitter(limiter),
            onEvent: agentListener(app),
        },
        sessionIo(appPublisher(app))
    )
}
