/**
 * One console login attempt (docs/admin.md, "Lockout"; GP-TM-25, GP-TM-26, GP-TM-53): the
 * rate limit and the exponential backoff are checked first, the failure is counted on
 * flash before the password is even hashed (so cutting power mid-check still counts), and
 * every wrong credential costs the same work and gets the same answer.
 */

import { Clock } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { PasswordRecord, Pause, verifyPassword } from "../credentials"
import { SetupCodeHash, setupCodeRecord, verifySetupCode } from "../identity"
import { RateLimiter } from "../ratelimit"
import { AdminState, AdminStore } from "./store"

export const OWNER = "owner"

export interface LoginPolicy {
    /** Failed logins after which the console locks until a factory reset. */
    lockAfter: number
    /** Wait after the first failure; it doubles with each further failure. */
    backoffBaseMs: number
    backoffMaxMs: number
}

export const DEFAULT_LOGIN_POLICY: LoginPolicy = {
    lockAfter: 10,
    backoffBaseMs: 1000,
    backoffMaxMs: 600000,
}

/** Wait before the next attempt is looked at, after `failures` failed ones. */
export function backoffMs(policy: LoginPolicy, failures: number): number {
    if (failures <= 0) return 0
    let wait = policy.backoffBaseMs
    for (let i = 1; i < failures && wait < policy.backoffMaxMs; i++) wait = wait * 2
    return Math.min(wait, policy.backoffMaxMs)
}

export function isLocked(policy: LoginPolicy, state: AdminState): boolean {
    return state.failures >= policy.lockAfter
}

/**
 * "password" or "setup-code" (accepted, by that method); "failed"; "locked"; "wait" (the
 * backoff is running); "rate-limited" (the login bucket is empty).
 */
export interface LoginResult {
    outcome: string
    waitMs: number
    failures: number
}

export interface LoginDeps {
    crypto: Crypto
    clock: Clock
    store: AdminStore
    limiter: RateLimiter
    policy: LoginPolicy
    setupCode: () => Promise<SetupCodeHash | null>
}

/** A record nobody's password matches, hashed as often as a real one, for unknown users. */
function decoy(iterations: number): PasswordRecord {
    return { iterations: iterations, salt: Buffer.alloc(16), hash: Buffer.alloc(32) }
}

function pauseOn(clock: Clock): Pause {
    return async function () {
        await clock.sleep(0)
    }
}

/**
 * Evaluates one attempt at `nowMs` against `notBeforeMs` (the end of the running backoff).
 * Persists the failure count before verifying and clears it on success.
 */
export async function attemptLogin(
    deps: LoginDeps,
    user: string,
    secret: string,
    notBeforeMs: number
): Promise<LoginResult> {
    const state = deps.store.state()
    if (isLocked(deps.policy, state))
        return { outcome: "locked", waitMs: 0, failures: state.failures }
    const now = deps.clock.monotonicMs()
    if (now < notBeforeMs)
        return { outcome: "wait", waitMs: notBeforeMs - now, failures: state.failures }
    if (!deps.limiter.allow("logins")) {
        const wait = deps.limiter.waitMs("logins")
        return { outcome: "rate-limited", waitMs: wait, failures: state.failures }
    }

    // Count the attempt as failed first: a power cut during the check cannot undo it.
    const failures = state.failures + 1
    await deps.store.save({
        seq: state.seq,
        failures: failures,
        ownerPassword: state.ownerPassword,
        setupUsed: state.setupUsed,
        resetPending: state.resetPending,
    })

    const setup = state.ownerPassword === null && !state.setupUsed ? await deps.setupCode() : null
    let outcome = "failed"
    if (user === OWNER && state.ownerPassword !== null) {
        if (await verifyPassword(deps.crypto, state.ownerPassword, secret, pauseOn(deps.clock)))
            outcome = "password"
    } else if (user === OWNER && setup !== null) {
        if (await verifySetupCode(deps.crypto, deps.clock, secret, setup)) outcome = "setup-code"
    } else {
        const iterations = state.ownerPassword
            ? state.ownerPassword.iterations
            : setup
              ? setupCodeRecord(setup).iterations
              : 100000
        await verifyPassword(deps.crypto, decoy(iterations), secret, pauseOn(deps.clock))
    }

    if (outcome === "failed") return { outcome: outcome, waitMs: 0, failures: failures }
    const after = deps.store.state()
    await deps.store.save({
        seq: after.seq,
        failures: 0,
        ownerPassword: after.ownerPassword,
        setupUsed: after.setupUsed,
        resetPending: after.resetPending,
    })
    return { outcome: outcome, waitMs: 0, failures: 0 }
}
