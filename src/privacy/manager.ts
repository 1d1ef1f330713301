/**
 * The privacy manager (docs/privacy.md; GP-TM-10, GP-TM-11, GP-TM-12, GP-TM-14): holds the
 * owner's personal data as the inventory declares it, answers `mayCollect` / `mayPublish`,
 * records consent and restriction power-safely, rectifies, erases and purges what outlived
 * its retention. What turns processing off counts in RAM at once, before it is written (and
 * stays if the write fails); what turns it on counts once written. Writes go one at a time
 * in the order asked. Every change is audited with its actor, never with a personal value.
 */

import { Clock } from "../../hal/clock"
import { Prefs, PrefsChanges } from "../prefs"
import {
    ConsentRecord,
    consentActor,
    decodeConsents,
    encodeConsents,
    isGranted,
    withConsent,
} from "./consent"
import { HeldItem, encodeHeld, minimise, minimiseField, publishPayload, uintText } from "./held"
import {
    DEFAULT_INVENTORY,
    DataCategory,
    NOTICE_VERSION,
    findCategory,
    findField,
    inventoryProblems,
    isManaged,
} from "./inventory"
import {
    AuditSink,
    EVENT_CONSENT,
    EVENT_REQUEST,
    EVENT_RETENTION,
    HELD_PREFIX,
    KEPT_PREFIX,
    KEY_CONSENT,
    KEY_RESTRICTED,
    PrivacyError,
    itemsExcept,
    joined,
    purgePlan,
    reconcilePlan,
    removeOne,
    restrictionText,
    restrictionTime,
    withItem,
} from "./state"

export interface PrivacyDeps {
    prefs: Prefs
    clock: Clock
    audit: AuditSink
    /** Default: DEFAULT_INVENTORY. */
    inventory?: DataCategory[]
    /** Default: NOTICE_VERSION. */
    notice?: string
}

/** Sends one payload; true when the transport took it. */
export type PayloadSender = (payload: Buffer) => Promise<boolean>

/** How often a caller waiting for the manager's lock looks again (board clock). */
const LOCK_POLL_MS = 5

export class PrivacyManager {
    private consentList: ConsentRecord[] = []
    private items: HeldItem[] = []
    private restrictedAt: number | null = null
    private restricted = false
    /** One entry per withdrawal being written: those categories are off already. */
    private withdrawing: string[] = []
    /** Restrictions and erasures asked for and not yet written: processing is off. */
    private restricting = 0
    private erasing = 0
    /**
     * A ticket lock: writers wait on the board clock (fibers on DeviceScript) and go in the
     * order they asked, so the owner's last request is the one that stands.
     */
    private nextTicket = 0
    private serving = 0
    private readonly inventory: DataCategory[]
    private readonly notice: string

    private constructor(private readonly deps: PrivacyDeps) {
        this.inventory = deps.inventory ? deps.inventory : DEFAULT_INVENTORY
        this.notice = deps.notice ? deps.notice : NOTICE_VERSION
    }

    /**
     * Loads consent, restriction and stored items; PrivacyError "inventory" for an
     * incomplete inventory. Stored data the inventory no longer declares, and data of a
     * consent category without a grant to the current notice, is removed now (GP-TM-11).
     */
    static async open(deps: PrivacyDeps): Promise<PrivacyManager> {
        const m = new PrivacyManager(deps)
        const problems = inventoryProblems(m.inventory)
        if (problems.length > 0) throw new PrivacyError("inventory", problems[0])
        await m.load()
        return m
    }

    categories(): DataCategory[] {
        return this.inventory
    }

    noticeVersion(): string {
        return this.notice
    }

    consents(): ConsentRecord[] {
        return this.consentList.slice(0)
    }

    isRestricted(): boolean {
        return this.restricted || this.restricting > 0
    }

    /** Wall time the restriction began (null: unknown or not restricted). */
    restrictedSince(): number | null {
        return this.restrictedAt
    }

    /**
     * Consent categories that had a grant to an older notice: the owner must be asked again
     * (an update that changes a purpose never carries consent over silently, GP-TM-20).
     */
    pendingConsents(): string[] {
        const out: string[] = []
        for (let i = 0; i < this.consentList.length; i++) {
            const r = this.consentList[i]
            if (r.granted && r.notice !== this.notice) out.push(r.category)
        }
        return out
    }

    /** True when the device may collect (and use) data of category `id` now. */
    mayCollect(id: string): boolean {
        const c = findCategory(this.inventory, id)
        if (c === null || !isManaged(c)) return false
        if (this.erasing > 0 || this.restricted || this.restricting > 0) return false
        if (c.basis !== "consent") return true
        if (this.withdrawing.indexOf(id) >= 0) return false
        return isGranted(this.consentList, id, this.notice)
    }

    /** True when data of category `id` may leave the device now. */
    mayPublish(id: string): boolean {
        const c = findCategory(this.inventory, id)
        return c !== null && c.leavesDevice && this.mayCollect(id)
    }

    /** The items held of category `id`, in a new list (the items are shared: read only). */
    held(id: string): HeldItem[] {
        const out: HeldItem[] = []
        for (let i = 0; i < this.items.length; i++)
            if (this.items[i].category === id) out.push(this.items[i])
        return out
    }

    /** One field of a single-item category, or null when it may not be used now. */
    valueOf(id: string, field: string): number | string | null {
        if (!this.mayCollect(id)) return null
        const list = this.held(id)
        if (list.length < 1) return null
        const v = list[list.length - 1].fields[field]
        return v === undefined ? null : v
    }

    /**
     * Collects one item of category `id`: refused (false) unless mayCollect, or when no
     * declared field is valid, or when a category held in flash with a retention meets an
     * unknown wall time (its age could not be told later). Keeps only declared fields
     * (GP-TM-12); a single-item category merges the new fields into the item it holds.
     */
    async collect(id: string, input: { [name: string]: unknown }): Promise<boolean> {
        const c = findCategory(this.inventory, id)
        if (c === null || !this.mayCollect(id)) return false
        const fields = minimise(c, input)
        if (fields === null) return false
        const at = this.deps.clock.wallTime()
        if (c.holding === "ram") {
            const mono = this.deps.clock.monotonicMs()
            this.put(c, { category: id, fields: fields, at: at, mono: mono })
            return true
        }
        if (c.retentionS > 0 && at === null) return false
        await this.enter()
        try {
            // Consent may have gone while this caller waited for the lock.
            if (!this.mayCollect(id)) return false
            await this.storeItem(c, fields, at)
        } finally {
            this.leave()
        }
        return true
    }

    /**
     * Sends the held items of `id` one at a time while mayPublish holds: a withdrawal or a
     * restriction during a send stops the next one. Items held in RAM are dropped once
     * sent; items held in flash stay. Returns how many were sent.
     */
    async publishHeld(id: string, send: PayloadSender): Promise<number> {
        const c = findCategory(this.inventory, id)
        if (c === null) return 0
        let sent = 0
        const pending = this.held(id)
        for (let i = 0; i < pending.length; i++) {
            if (!this.mayPublish(id)) break
            if (!(await send(publishPayload(pending[i])))) break
            sent++
            if (c.holding === "ram") this.drop(pending[i])
        }
        return sent
    }

    /**
     * Grants or withdraws consent for a consent-based category (PrivacyError "consent" for
     * any other). A withdrawal stops collection and publishing before it is written and
     * removes the category's data with the same write; a grant counts once written.
     */
    async setConsent(id: string, grant: boolean, actor: string): Promise<void> {
        const c = findCategory(this.inventory, id)
        if (c === null || c.basis !== "consent" || !isManaged(c))
            throw new PrivacyError("consent", "not a consent-based category")
        if (!grant) {
            this.withdrawing.push(id)
            this.dropCategory(id)
        }
        await this.enter()
        try {
            const record: ConsentRecord = {
                category: id,
                granted: grant,
                at: this.deps.clock.wallTime(),
                notice: this.notice,
                by: consentActor(actor),
            }
            const next = withConsent(this.consentList, record)
            const changes: PrefsChanges = {}
            changes[KEY_CONSENT] = encodeConsents(next)
            if (!grant && c.holding === "prefs") changes[HELD_PREFIX + id] = null
            await this.deps.prefs.update(changes)
            this.consentList = next
            if (!grant) {
                this.dropCategory(id)
                this.withdrawing = removeOne(this.withdrawing, id)
            }
        } finally {
            this.leave()
        }
        const detail = "category=" + id + " granted=" + (grant ? "true" : "false")
        await this.deps.audit(EVENT_CONSENT, actor, "success", detail + " notice=" + this.notice)
    }

    /** Restricts processing (GDPR Art. 18): on at once, off once written. Data stays. */
    async setRestricted(on: boolean, actor: string): Promise<void> {
        if (on) this.restricting++
        await this.enter()
        try {
            const at = this.deps.clock.wallTime()
            if (on) await this.deps.prefs.set(KEY_RESTRICTED, restrictionText(at))
            else await this.deps.prefs.remove(KEY_RESTRICTED)
            this.restricted = on
            this.restrictedAt = on ? at : null
            if (on) this.restricting--
        } finally {
            this.leave()
        }
        const detail = "right=restrict on=" + (on ? "true" : "false")
        await this.deps.audit(EVENT_REQUEST, actor, "success", detail)
    }

    /**
     * Rectifies one field of a single-item category held in flash (owner profile,
     * preferences, location). Allowed while restricted; a consent category needs its grant.
     */
    async rectify(id: string, field: string, value: unknown, actor: string): Promise<void> {
        const c = findCategory(this.inventory, id)
        if (c === null || c.holding !== "prefs" || c.maxItems !== 1)
            throw new PrivacyError("category", "not a rectifiable category")
        const spec = findField(c, field)
        if (spec === null) throw new PrivacyError("field", "not declared")
        const v = minimiseField(spec, value)
        if (v === null) throw new PrivacyError("value", "outside the field's bounds")
        if (c.basis === "consent" && !isGranted(this.consentList, id, this.notice))
            throw new PrivacyError("consent", "not granted")
        const fields: { [name: string]: number | string } = {}
        fields[field] = v
        await this.enter()
        try {
            await this.storeItem(c, fields, this.deps.clock.wallTime())
        } finally {
            this.leave()
        }
        const detail = "right=rectify category=" + id + " field=" + field
        await this.deps.audit(EVENT_REQUEST, actor, "success", detail)
    }

    /**
     * Erases the owner's personal data and preferences (GDPR Art. 17): everything in RAM at
     * once, then every prefs key but the "dev." device state in one power-safe write that
     * leaves no erased byte in flash. The device identity and the security audit log stay:
     * they are not held here, and the log's retention is a legal obligation (Art. 17(3)(b)).
     */
    async erase(actor: string): Promise<void> {
        this.erasing++
        this.items = []
        await this.deps.audit(EVENT_REQUEST, actor, "info", "right=erase phase=start")
        await this.enter()
        try {
            const kept: { [key: string]: string } = {}
            const keys = this.deps.prefs.keys()
            for (let i = 0; i < keys.length; i++) {
                const value = this.deps.prefs.get(keys[i])
                if (keys[i].indexOf(KEPT_PREFIX) === 0 && value !== null) kept[keys[i]] = value
            }
            await this.deps.prefs.replaceAll(kept)
            this.items = []
            this.consentList = []
            this.restricted = false
            this.restrictedAt = null
            this.erasing--
        } finally {
            this.leave()
        }
        const detail = "right=erase kept=device-identity,security-log"
        await this.deps.audit(EVENT_REQUEST, actor, "success", detail)
    }

    /**
     * Removes every held item older than its category's retention, on the board clock
     * (GP-TM-12): RAM items by monotonic age, flash items by wall time when it is known.
     * One write for all flash categories; one audit record when anything went. Returns
     * how many items were removed.
     */
    async purgeExpired(): Promise<number> {
        let removed = 0
        await this.enter()
        try {
            removed = await this.purgeNow()
        } finally {
            this.leave()
        }
        if (removed > 0)
            await this.deps.audit(EVENT_RETENTION, "device", "info", "removed=" + uintText(removed))
        return removed
    }

    /**
     * Stores device state that is not personal data under a "dev." key (kept by an
     * erasure), serialised with the manager's own writes: the rights module's replay
     * counter. PrivacyError "key" for any other key.
     */
    async setDeviceState(key: string, value: string): Promise<void> {
        if (key.indexOf(KEPT_PREFIX) !== 0) throw new PrivacyError("key", "not device state")
        await this.enter()
        try {
            await this.deps.prefs.set(key, value)
        } finally {
            this.leave()
        }
    }

    private async enter(): Promise<void> {
        const ticket = this.nextTicket
        this.nextTicket++
        while (this.serving !== ticket) await this.deps.clock.sleep(LOCK_POLL_MS)
    }

    private leave(): void {
        this.serving++
    }

    /** Drops expired items; one prefs write when a flash-held one went. Returns the count. */
    private async purgeNow(): Promise<number> {
        const clock = this.deps.clock
        const plan = purgePlan(this.items, this.inventory, clock.wallTime(), clock.monotonicMs())
        if (plan.removed === 0) return 0
        if (plan.changes !== null) await this.deps.prefs.update(plan.changes)
        this.items = plan.keep
        return plan.removed
    }

    /** Adds an item, or merges into the one item of a single-item category, then writes. */
    private async storeItem(
        c: DataCategory,
        fields: { [name: string]: number | string },
        at: number | null
    ): Promise<void> {
        const list = withItem(c, this.held(c.id), fields, at)
        await this.deps.prefs.set(HELD_PREFIX + c.id, encodeHeld(list))
        this.items = joined(itemsExcept(this.items, c.id), list)
    }

    private put(c: DataCategory, item: HeldItem): void {
        this.items.push(item)
        const list = this.held(c.id)
        if (list.length > c.maxItems) this.drop(list[0])
    }

    private drop(item: HeldItem): void {
        const out: HeldItem[] = []
        for (let i = 0; i < this.items.length; i++)
            if (this.items[i] !== item) out.push(this.items[i])
        this.items = out
    }

    private dropCategory(id: string): void {
        this.items = itemsExcept(this.items, id)
    }

    private async load(): Promise<void> {
        const prefs = this.deps.prefs
        this.consentList = decodeConsents(prefs.get(KEY_CONSENT))
        const restriction = prefs.get(KEY_RESTRICTED)
        if (restriction !== null) {
            this.restricted = true
            this.restrictedAt = restrictionTime(restriction)
        }

        // Reconcile what flash holds with what the inventory declares and consent allows.
        const plan = reconcilePlan(prefs, this.inventory, this.consentList, this.notice)
        this.items = plan.items
        const changed = Object.keys(plan.changes).length
        if (changed === 0) return
        await prefs.update(plan.changes)
        await this.deps.audit(EVENT_RETENTION, "device", "info", "reconciled=" + uintText(changed))
    }
}
