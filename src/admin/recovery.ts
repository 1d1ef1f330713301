/**
 * Factory reset (docs/admin.md, "Recovery"; GP-TM-26): reached only with physical
 * presence, it wipes the owner password, the console's counters and the user data, and
 * keeps the device identity (key in the secure element, certificate, setup code) and the
 * audit log, which records it. Marked pending first, so a power cut resumes it at boot.
 * The prefs seal's secret goes too, so no copy of the old records verifies again.
 */

import { Flash } from "../../hal/flash"
import { SecureElement } from "../../hal/secure-element"
import { forgetSeal } from "../privacy/seal"
import { EVENTS } from "../audit/chain"
import { AuditLog } from "../audit/log"
import { AdminStore } from "./store"

/** Partitions holding user data, erased by a factory reset when the profile has them. */
export const USER_DATA_PARTITIONS = ["prefs"]

export interface ResetDeps {
    flash: Flash
    store: AdminStore
    audit: AuditLog | null
    userData?: string[]
    /** Holds the prefs seal's secret (SE_SLOT_PREFS), forgotten with the user data. */
    secureElement?: SecureElement
}

async function note(deps: ResetDeps, actor: string, outcome: string, detail: string) {
    if (deps.audit !== null)
        await deps.audit.append({
            event: EVENTS.factoryReset,
            actor: actor,
            outcome: outcome,
            detail: detail,
        })
}

async function wipe(deps: ResetDeps): Promise<void> {
    const names = deps.userData ? deps.userData : USER_DATA_PARTITIONS
    const present = deps.flash.partitionNames()
    for (let i = 0; i < names.length; i++) {
        if (present.indexOf(names[i]) < 0) continue
        const p = deps.flash.partition(names[i])
        await p.erase(0, p.size)
    }
    // A dump of the old prefs written back must not verify: the next open makes a new secret.
    if (deps.secureElement !== undefined) await forgetSeal(deps.secureElement)
    // Last: the owner password and the pending mark go together.
    await deps.store.wipe()
}

/** Runs a factory reset authorised by `actor` (the physically present person). */
export async function factoryReset(deps: ResetDeps, actor: string): Promise<void> {
    await note(deps, actor, "info", "phase=start")
    const state = deps.store.state()
    await deps.store.save({
        seq: state.seq,
        failures: state.failures,
        ownerPassword: state.ownerPassword,
        setupUsed: state.setupUsed,
        resetPending: true,
    })
    await wipe(deps)
    await note(deps, actor, "success", "phase=done kept=identity,audit")
}

/** Finishes a reset a power cut interrupted; true when there was one to finish. */
export async function resumeFactoryReset(deps: ResetDeps): Promise<boolean> {
    if (!deps.store.state().resetPending) return false
    await wipe(deps)
    await note(deps, "device", "success", "phase=resumed kept=identity,audit")
    return true
}
