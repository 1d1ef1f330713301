/**
 * Simulated secure element (hal/secure-element.ts; GP-TM-02, GP-TM-35): P-256 key slots
 * whose private halves never leave through the HAL, symmetric secrets that only evolve
 * forward, monotonic counters, random bytes and zeroize. DEV/se.json models the inside of
 * the chip (written atomically); reading it is the sim's equivalent of decapping the part.
 */

import { createHmac, createPrivateKey, randomBytes } from "node:crypto"
import { p256 } from "@noble/curves/nist.js"
import { SecureElementError } from "../hal/errors"
import { SE_COUNTER_COUNT, SE_KEY_SLOT_COUNT, SecureElement } from "../hal/secure-element"
import { PowerRail } from "./power"
import { SimStateError, hexOf, readJsonObject, writeJsonAtomic } from "./store"

const FORMAT = "bulwark-sim-se"
const EVOLVE_LABEL = Buffer.from("bulwark-evolve")
const COUNTER_MAX = 0xffffffff
const RANDOM_MAX = 65536

type Slot =
    | { kind: "empty" }
    /** Emptied by zeroize: reported as "zeroized" until a new key or secret is made. */
    | { kind: "wiped" }
    | { kind: "p256"; privateKey: Buffer; publicKey: Buffer }
    | { kind: "secret"; secret: Buffer }

interface SeState {
    slots: Slot[]
    counters: number[]
}

function slotToJson(slot: Slot): unknown {
    if (slot.kind === "p256")
        return {
            kind: "p256",
            privateKey: slot.privateKey.toString("hex"),
            publicKey: slot.publicKey.toString("hex"),
        }
    if (slot.kind === "secret") return { kind: "secret", secret: slot.secret.toString("hex") }
    return { kind: slot.kind }
}

function slotFromJson(raw: unknown): Slot | null {
    if (raw === null || typeof raw !== "object") return null
    const s = raw as Record<string, unknown>
    if (s.kind === "empty" || s.kind === "wiped") return { kind: s.kind }
    if (s.kind === "secret") {
        const secret = hexOf(s.secret, 32)
        return secret ? { kind: "secret", secret: secret } : null
    }
    if (s.kind === "p256") {
        const privateKey = hexOf(s.privateKey, 32)
        const publicKey = hexOf(s.publicKey, 65)
        if (!privateKey || !publicKey) return null
        return { kind: "p256", privateKey: privateKey, publicKey: publicKey }
    }
    return null
}

function loadState(path: string): SeState {
    const raw = readJsonObject(path)
    const bad = (what: string) => new SimStateError("corrupt", path, "SE state: " + what)
    if (raw.format !== FORMAT || raw.version !== 1) throw bad("format")
    if (!Array.isArray(raw.slots) || raw.slots.length !== SE_KEY_SLOT_COUNT) throw bad("slots")
    const slots: Slot[] = []
    for (const s of raw.slots) {
        const slot = slotFromJson(s)
        if (!slot) throw bad("slot")
        slots.push(slot)
    }
    if (!Array.isArray(raw.counters) || raw.counters.length !== SE_COUNTER_COUNT)
        throw bad("counters")
    for (const c of raw.counters)
        if (!Number.isInteger(c) || c < 0 || c > COUNTER_MAX) throw bad("counter")
    return { slots: slots, counters: raw.counters.slice() }
}

function saveState(path: string, state: SeState): void {
    writeJsonAtomic(path, {
        format: FORMAT,
        version: 1,
        slots: state.slots.map(slotToJson),
        counters: state.counters,
    })
}

function checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SE_KEY_SLOT_COUNT)
        throw new SecureElementError("slot", "slot must be 0.." + (SE_KEY_SLOT_COUNT - 1))
}

function checkCounter(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= SE_COUNTER_COUNT)
        throw new SecureElementError("counter", "counter must be 0.." + (SE_COUNTER_COUNT - 1))
}

function isBytes(value: unknown, length: number): value is Buffer {
    return Buffer.isBuffer(value) && value.length === length
}

export class SimSecureElement implements SecureElement {
    private state: SeState

    /** Writes the state of a blank element: no keys, counters at zero. */
    static createFile(path: string): void {
        const slots: Slot[] = []
        for (let i = 0; i < SE_KEY_SLOT_COUNT; i++) slots.push({ kind: "empty" })
        const counters: number[] = []
        for (let i = 0; i < SE_COUNTER_COUNT; i++) counters.push(0)
        saveState(path, { slots: slots, counters: counters })
    }

    /** Loads the element's state; SimStateError "missing" or "corrupt". */
    constructor(
        private readonly path: string,
        private readonly rail: PowerRail
    ) {
        this.state = loadState(path)
    }

    async generateKey(slot: number): Promise<Buffer> {
        this.rail.check()
        checkSlot(slot)
        this.requireFree(slot)
        const privateKey = Buffer.from(p256.utils.randomSecretKey())
        const publicKey = Buffer.from(p256.getPublicKey(privateKey, false))
        this.commit(slot, { kind: "p256", privateKey: privateKey, publicKey: publicKey })
        return Buffer.from(publicKey)
    }

    async publicKey(slot: number): Promise<Buffer> {
        this.rail.check()
        return Buffer.from(this.keySlot(slot).publicKey)
    }

    async signDigest(slot: number, digest: Buffer): Promise<Buffer> {
        this.rail.check()
        const key = this.keySlot(slot)
        if (!isBytes(digest, 32)) throw new SecureElementError("input", "digest: expected 32 bytes")
        const signature = p256.sign(digest, key.privateKey, { prehash: false, lowS: true })
        return Buffer.from(signature)
    }

    /**
     * Any valid signature verifies, high-S included (ECDSA as the standard defines it; a
     * hardware element does the same). Malformed keys or signatures are false, not errors.
     */
    async verifyDigest(publicKey: Buffer, digest: Buffer, signature: Buffer): Promise<boolean> {
        this.rail.check()
        if (!isBytes(publicKey, 65) || !isBytes(digest, 32) || !isBytes(signature, 64))
            return false
        try {
            return p256.verify(signature, digest, publicKey, { prehash: false, lowS: false })
        } catch {
            return false
        }
    }

    async ecdh(slot: number, peerPublicKey: Buffer): Promise<Buffer> {
        this.rail.check()
        const key = this.keySlot(slot)
        if (!isBytes(peerPublicKey, 65))
            throw new SecureElementError("input", "peer key: expected 65-byte uncompressed SEC1")
        let shared: Uint8Array
        try {
            shared = p256.getSharedSecret(key.privateKey, peerPublicKey, true)
        } catch {
            throw new SecureElementError("input", "peer key is not a point of P-256")
        }
        return Buffer.from(shared.subarray(1))
    }

    async generateSecret(slot: number): Promise<void> {
        this.rail.check()
        checkSlot(slot)
        this.requireFree(slot)
        this.commit(slot, { kind: "secret", secret: randomBytes(32) })
    }

    async hmac(slot: number, data: Buffer): Promise<Buffer> {
        this.rail.check()
        const secret = this.secretSlot(slot)
        if (!Buffer.isBuffer(data)) throw new SecureElementError("input", "data: expected bytes")
        return createHmac("sha256", secret).update(data).digest()
    }

    async evolveSecret(slot: number): Promise<void> {
        this.rail.check()
        const old = this.secretSlot(slot)
        const next = createHmac("sha256", old).update(EVOLVE_LABEL).digest()
        this.commit(slot, { kind: "secret", secret: next })
    }

    async clearSlot(slot: number): Promise<void> {
        this.rail.check()
        checkSlot(slot)
        this.commit(slot, { kind: "empty" })
    }

    async readCounter(index: number): Promise<number> {
        this.rail.check()
        checkCounter(index)
        return this.state.counters[index]
    }

    async incrementCounter(index: number): Promise<number> {
        this.rail.check()
        checkCounter(index)
        const value = this.state.counters[index]
        if (value >= COUNTER_MAX) throw new SecureElementError("counter", "counter exhausted")
        const counters = this.state.counters.slice()
        counters[index] = value + 1
        const next = { slots: this.state.slots, counters: counters }
        saveState(this.path, next)
        this.state = next
        return value + 1
    }

    async random(length: number): Promise<Buffer> {
        this.rail.check()
        if (!Number.isInteger(length) || length < 0 || length > RANDOM_MAX)
            throw new SecureElementError("input", "length: expected 0.." + RANDOM_MAX)
        return randomBytes(length)
    }

    async zeroize(): Promise<void> {
        this.rail.check()
        const slots: Slot[] = this.state.slots.map((s) =>
            s.kind === "empty" ? s : { kind: "wiped" }
        )
        const next = { slots: slots, counters: this.state.counters }
        saveState(this.path, next)
        this.state = next
    }

    /**
     * PEM (PKCS #8) of the slot's private key, for the sim's TLS engine only. It models the
     * hardware path between a TLS offload engine and the secure element, which on a real
     * board never crosses into firmware; it is not on the SecureElement contract, so
     * portable code cannot reach it.
     */
    tlsPrivateKeyPem(slot: number): string {
        this.rail.check()
        const key = this.keySlot(slot)
        const jwk = {
            kty: "EC",
            crv: "P-256",
            d: key.privateKey.toString("base64url"),
            x: key.publicKey.subarray(1, 33).toString("base64url"),
            y: key.publicKey.subarray(33, 65).toString("base64url"),
        }
        const pem = createPrivateKey({ key: jwk, format: "jwk" }).export({
            type: "pkcs8",
            format: "pem",
        })
        return pem.toString()
    }

    private requireFree(slot: number): void {
        const kind = this.state.slots[slot].kind
        if (kind === "p256" || kind === "secret")
            throw new SecureElementError("occupied", "slot " + slot + " already holds a key")
    }

    private keySlot(slot: number): { privateKey: Buffer; publicKey: Buffer } {
        const s = this.occupied(slot)
        if (s.kind !== "p256")
            throw new SecureElementError("slot", "slot " + slot + " holds a secret, not a key pair")
        return s
    }

    private secretSlot(slot: number): Buffer {
        const s = this.occupied(slot)
        if (s.kind !== "secret")
            throw new SecureElementError("slot", "slot " + slot + " holds a key pair, not a secret")
        return s.secret
    }

    private occupied(slot: number): Slot {
        checkSlot(slot)
        const s = this.state.slots[slot]
        if (s.kind === "wiped")
            throw new SecureElementError("zeroized", "slot " + slot + " was zeroized")
        if (s.kind === "empty") throw new SecureElementError("empty", "slot " + slot + " is empty")
        return s
    }

    /** Persists the new slot content, then adopts it. */
    private commit(slot: number, content: Slot): void {
        const slots = this.state.slots.slice()
        slots[slot] = content
        const next = { slots: slots, counters: this.state.counters }
        saveState(this.path, next)
        this.state = next
    }
}
