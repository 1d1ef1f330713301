/**
 * Simulated OTP fuses (hal/otp.ts): three key-digest slots with revoke bits, the
 * anti-rollback counter as burnt bits that only rise, and the debug-disable and key-lock
 * fuses (GP-TM-01, GP-TM-06, GP-TM-33). Every burn is checked first, then written
 * atomically to DEV/otp.json; nothing here ever clears a fuse.
 */

import { OtpError } from "../hal/errors"
import {
    OTP_COUNTER_MAX,
    OTP_KEY_SLOT_COUNT,
    Otp,
    OtpKeySlot,
    OtpLock,
    OtpLocks,
} from "../hal/otp"
import { PowerRail } from "./power"
import { SimStateError, hexOf, readJsonObject, writeJsonAtomic } from "./store"

const FORMAT = "bulwark-sim-otp"
const DIGEST_LENGTH = 32

interface OtpState {
    keySlots: OtpKeySlot[]
    /** Number of burnt counter bits, 0..OTP_COUNTER_MAX. */
    counter: number
    locks: OtpLocks
}

function copySlot(slot: OtpKeySlot): OtpKeySlot {
    return { digest: slot.digest ? Buffer.from(slot.digest) : null, revoked: slot.revoked }
}

function copyLocks(locks: OtpLocks): OtpLocks {
    return { debugDisabled: locks.debugDisabled, keysLocked: locks.keysLocked }
}

function toJson(state: OtpState): unknown {
    return {
        format: FORMAT,
        version: 1,
        keySlots: state.keySlots.map((s) => ({
            digest: s.digest ? s.digest.toString("hex") : null,
            revoked: s.revoked,
        })),
        counter: state.counter,
        locks: copyLocks(state.locks),
    }
}

function fromJson(path: string, raw: Record<string, unknown>): OtpState {
    const bad = (what: string) => new SimStateError("corrupt", path, "OTP state: " + what)
    if (raw.format !== FORMAT || raw.version !== 1) throw bad("format")
    const slotsRaw = raw.keySlots
    if (!Array.isArray(slotsRaw) || slotsRaw.length !== OTP_KEY_SLOT_COUNT) throw bad("keySlots")
    const keySlots: OtpKeySlot[] = []
    for (const s of slotsRaw) {
        if (s === null || typeof s !== "object") throw bad("keySlots")
        const digest = s.digest === null ? null : hexOf(s.digest, DIGEST_LENGTH)
        if (s.digest !== null && digest === null) throw bad("keySlots.digest")
        if (typeof s.revoked !== "boolean") throw bad("keySlots.revoked")
        keySlots.push({ digest: digest, revoked: s.revoked })
    }
    const counter = raw.counter
    if (typeof counter !== "number" || !Number.isInteger(counter)) throw bad("counter")
    if (counter < 0 || counter > OTP_COUNTER_MAX) throw bad("counter")
    const locks = raw.locks as Record<string, unknown> | null
    if (locks === null || typeof locks !== "object") throw bad("locks")
    if (typeof locks.debugDisabled !== "boolean" || typeof locks.keysLocked !== "boolean")
        throw bad("locks")
    return {
        keySlots: keySlots,
        counter: counter,
        locks: { debugDisabled: locks.debugDisabled, keysLocked: locks.keysLocked },
    }
}

export interface OtpFactoryState {
    /** Anchor digests burnt into slots 0..n-1 (at most OTP_KEY_SLOT_COUNT). */
    trust: Buffer[]
    /** Initial anti-rollback counter. */
    counter: number
}

export class SimOtp implements Otp {
    private state: OtpState

    /** Writes the fuse state of a new chip: blank except the given digests and counter. */
    static createFile(path: string, factory: OtpFactoryState): void {
        if (factory.trust.length > OTP_KEY_SLOT_COUNT)
            throw new OtpError("slot", "at most " + OTP_KEY_SLOT_COUNT + " trust anchors")
        const keySlots: OtpKeySlot[] = []
        for (let i = 0; i < OTP_KEY_SLOT_COUNT; i++) {
            const digest = i < factory.trust.length ? factory.trust[i] : null
            if (digest !== null && digest.length !== DIGEST_LENGTH)
                throw new OtpError("range", "trust anchor " + i + " is not a 32-byte digest")
            keySlots.push({ digest: digest, revoked: false })
        }
        checkCounterValue(factory.counter)
        const state: OtpState = {
            keySlots: keySlots,
            counter: factory.counter,
            locks: { debugDisabled: false, keysLocked: false },
        }
        writeJsonAtomic(path, toJson(state))
    }

    /** Loads the fuses; SimStateError "missing" or "corrupt". */
    constructor(
        private readonly path: string,
        private readonly rail: PowerRail
    ) {
        this.state = fromJson(path, readJsonObject(path))
    }

    async readKeySlot(index: number): Promise<OtpKeySlot> {
        this.rail.check()
        checkSlotIndex(index)
        return copySlot(this.state.keySlots[index])
    }

    async burnKeySlot(index: number, digest: Buffer): Promise<void> {
        this.rail.check()
        checkSlotIndex(index)
        if (!Buffer.isBuffer(digest) || digest.length !== DIGEST_LENGTH)
            throw new OtpError("range", "digest: expected 32 bytes")
        if (this.state.locks.keysLocked) throw new OtpError("locked", "key slots are locked")
        if (this.state.keySlots[index].digest !== null)
            throw new OtpError("burnt", "key slot " + index + " is already burnt")
        this.commit((s) => {
            s.keySlots[index] = { digest: Buffer.from(digest), revoked: s.keySlots[index].revoked }
        })
    }

    async revokeKeySlot(index: number): Promise<void> {
        this.rail.check()
        checkSlotIndex(index)
        if (this.state.keySlots[index].revoked) return
        this.commit((s) => {
            s.keySlots[index] = { digest: s.keySlots[index].digest, revoked: true }
        })
    }

    async readCounter(): Promise<number> {
        this.rail.check()
        return this.state.counter
    }

    async raiseCounter(value: number): Promise<void> {
        this.rail.check()
        checkCounterValue(value)
        if (value <= this.state.counter) return
        this.commit((s) => {
            s.counter = value
        })
    }

    async readLocks(): Promise<OtpLocks> {
        this.rail.check()
        return copyLocks(this.state.locks)
    }

    async burnLock(lock: OtpLock): Promise<void> {
        this.rail.check()
        if (lock !== "debug-disabled" && lock !== "keys-locked")
            throw new OtpError("range", "unknown lock fuse")
        this.commit((s) => {
            if (lock === "debug-disabled") s.locks.debugDisabled = true
            else s.locks.keysLocked = true
        })
    }

    /** Applies `change` to a copy, persists it, then adopts it: memory never runs ahead. */
    private commit(change: (state: OtpState) => void): void {
        const next: OtpState = {
            keySlots: this.state.keySlots.map(copySlot),
            counter: this.state.counter,
            locks: copyLocks(this.state.locks),
        }
        change(next)
        writeJsonAtomic(this.path, toJson(next))
        this.state = next
    }
}

function checkSlotIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= OTP_KEY_SLOT_COUNT)
        throw new OtpError("slot", "key slot index must be 0.." + (OTP_KEY_SLOT_COUNT - 1))
}

function checkCounterValue(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > OTP_COUNTER_MAX)
        throw new OtpError("counter", "counter must be 0.." + OTP_COUNTER_MAX)
}
