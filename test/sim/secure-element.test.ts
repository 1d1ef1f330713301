/**
 * The simulated secure element keeps private keys and secrets inside (GP-TM-02, GP-TM-35):
 * no method of the HAL contract returns them, every device has its own keys (GP-TM-49),
 * signatures are standard low-S P-256, secrets only evolve forward, counters only rise.
 */

import { createHash, createHmac, createPublicKey, verify as nodeVerify } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { SecureElementError } from "../../hal/errors"
import { SecureElement } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"

afterAll(cleanupTestBoards)

const P256_N = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
const SPKI_PREFIX = Buffer.from("3059301306072a8648ce3d020106082a8648ce3d030107034200", "hex")

/** Every method of the HAL contract; the type below fails to compile if one is missing. */
const HAL_METHODS = [
    "generateKey",
    "publicKey",
    "signDigest",
    "verifyDigest",
    "ecdh",
    "generateSecret",
    "hmac",
    "evolveSecret",
    "clearSlot",
    "readCounter",
    "incrementCounter",
    "random",
    "zeroize",
] as const
type Missing = Exclude<keyof SecureElement, (typeof HAL_METHODS)[number]>
const exhaustive: [Missing] extends [never] ? true : false = true

/** What is inside the chip: read from DEV/se.json, as an attacker who decapped it would. */
function chipSlots(board: SimBoard): { kind: string; privateKey?: string; secret?: string }[] {
    return JSON.parse(readFileSync(join(board.dir, "se.json"), "utf8")).slots
}

function sha256(data: Buffer): Buffer {
    return createHash("sha256").update(data).digest()
}

async function seCode(promise: Promise<unknown>): Promise<string> {
    try {
        await promise
    } catch (err) {
        if (err instanceof SecureElementError) return err.code
        throw err
    }
    return "ok"
}

/** Hex, base64 and base64url spellings of a secret, to search outputs for. */
function spellings(hex: string): string[] {
    const bytes = Buffer.from(hex, "hex")
    return [hex, bytes.toString("base64"), bytes.toString("base64url")]
}

function flatten(value: unknown): string {
    if (Buffer.isBuffer(value)) return value.toString("hex") + " " + value.toString("base64")
    return JSON.stringify(value) ?? "undefined"
}

describe("sim secure element keys", () => {
    it("GP-TM-02: no method of the HAL contract returns the private key or a secret", async () => {
        const board = await makeTestBoard()
        const se = board.secureElement
        const peer = await makeTestBoard()
        const peerPub = await peer.secureElement.generateKey(0)
        const outputs: unknown[] = []
        const digest = sha256(Buffer.from("message"))

        const inside: string[] = []
        const remember = () => {
            for (const slot of chipSlots(board)) {
                if (slot.privateKey) inside.push(slot.privateKey)
                if (slot.secret) inside.push(slot.secret)
            }
        }

        outputs.push(await se.generateKey(0))
        outputs.push(await se.generateSecret(2))
        remember()
        outputs.push(await se.publicKey(0))
        const signature = await se.signDigest(0, digest)
        outputs.push(signature)
        outputs.push(await se.verifyDigest(await se.publicKey(0), digest, signature))
        outputs.push(await se.ecdh(0, peerPub))
        outputs.push(await se.hmac(2, Buffer.from("data")))
        outputs.push(await se.evolveSecret(2))
        remember()
        outputs.push(await se.hmac(2, Buffer.from("data")))
        outputs.push(await se.readCounter(0))
        outputs.push(await se.incrementCounter(0))
        outputs.push(await se.random(64))
        outputs.push(await se.clearSlot(3))
        outputs.push(await se.generateSecret(4))
        remember()
        outputs.push(await se.zeroize())
        for (const slot of [0, 2, 4]) outputs.push(await seCode(se.publicKey(slot)))
        const called = HAL_METHODS.filter((m) => typeof se[m] === "function")

        expect(exhaustive).toBe(true)
        expect(called).toEqual([...HAL_METHODS])
        const text = outputs.map(flatten).join("\n")
        expect(new Set(inside).size).toBe(4)
        for (const secret of inside)
            for (const spelling of spellings(secret)) expect(text.includes(spelling)).toBe(false)
    })

    it("GP-TM-49: two boards generate different identity keys", async () => {
        const a = await makeTestBoard()
        const b = await makeTestBoard()

        const pubA = await a.secureElement.generateKey(0)
        const pubB = await b.secureElement.generateKey(0)

        expect(pubA.equals(pubB)).toBe(false)
        expect(chipSlots(a)[0].privateKey).not.toEqual(chipSlots(b)[0].privateKey)
    })

    it("signs a digest with a low-S 64-byte r||s signature that Node's ECDSA accepts", async () => {
        const board = await makeTestBoard()
        const pub = await board.secureElement.generateKey(0)
        const message = Buffer.from("telemetry record 1")

        const signature = await board.secureElement.signDigest(0, sha256(message))

        expect(signature.length).toBe(64)
        const s = BigInt("0x" + signature.subarray(32).toString("hex"))
        expect(s <= P256_N / BigInt(2)).toBe(true)
        const spki = Buffer.concat([SPKI_PREFIX, pub])
        const key = createPublicKey({ key: spki, format: "der", type: "spki" })
        expect(
            nodeVerify("sha256", message, { key, dsaEncoding: "ieee-p1363" }, signature)
        ).toBe(true)
    })

    it("verifies good signatures, rejects mutated or malformed ones without throwing", async () => {
        const board = await makeTestBoard()
        const se = board.secureElement
        const pub = await se.generateKey(1)
        const digest = sha256(Buffer.from("x"))
        const signature = await se.signDigest(1, digest)
        const flipped = Buffer.from(signature)
        flipped[10] ^= 1

        expect(await se.verifyDigest(pub, digest, signature)).toBe(true)
        expect(await se.verifyDigest(pub, digest, flipped)).toBe(false)
        expect(await se.verifyDigest(pub, sha256(Buffer.from("y")), signature)).toBe(false)
        expect(await se.verifyDigest(pub.subarray(1), digest, signature)).toBe(false)
        expect(await se.verifyDigest(Buffer.alloc(65, 4), digest, signature)).toBe(false)
        expect(await se.verifyDigest(pub, digest, signature.subarray(1))).toBe(false)
    })

    it("agrees on an ECDH secret with a peer element", async () => {
        const a = await makeTestBoard()
        const b = await makeTestBoard()
        const pubA = await a.secureElement.generateKey(0)
        const pubB = await b.secureElement.generateKey(0)

        const ab = await a.secureElement.ecdh(0, pubB)
        const ba = await b.secureElement.ecdh(0, pubA)

        expect(ab.length).toBe(32)
        expect(ab).toEqual(ba)
        expect(await seCode(a.secureElement.ecdh(0, Buffer.alloc(65, 4)))).toBe("input")
    })

    it("keeps keys across a power cycle", async () => {
        const board = await makeTestBoard()
        const pub = await board.secureElement.generateKey(0)

        const next = await board.powerCycle()
        const digest = sha256(Buffer.from("after reboot"))
        const signature = await next.secureElement.signDigest(0, digest)

        expect(await next.secureElement.publicKey(0)).toEqual(pub)
        expect(await next.secureElement.verifyDigest(pub, digest, signature)).toBe(true)
    })

    it("refuses to overwrite a slot, to use an empty one, and bad slot numbers", async () => {
        const board = await makeTestBoard()
        const se = board.secureElement
        await se.generateKey(0)
        await se.generateSecret(1)

        expect(await seCode(se.generateKey(0))).toBe("occupied")
        expect(await seCode(se.generateSecret(0))).toBe("occupied")
        expect(await seCode(se.generateKey(1))).toBe("occupied")
        expect(await seCode(se.publicKey(5))).toBe("empty")
        expect(await seCode(se.generateKey(8))).toBe("slot")
        expect(await seCode(se.hmac(0, Buffer.alloc(1)))).toBe("slot")
        expect(await seCode(se.signDigest(1, Buffer.alloc(32)))).toBe("slot")
        expect(await seCode(se.signDigest(0, Buffer.alloc(31)))).toBe("input")
    })

    it("tlsPrivateKeyPem (sim TLS engine only) holds the same key as the slot", async () => {
        const board = await makeTestBoard()
        const pub = await board.secureElement.generateKey(0)

        const pem = board.secureElement.tlsPrivateKeyPem(0)

        const derived = createPublicKey(pem).export({ format: "der", type: "spki" })
        expect(Buffer.from(derived).subarray(SPKI_PREFIX.length)).toEqual(pub)
    })
})

describe("sim secure element secrets and counters", () => {
    it("evolves a secret one way: HMAC(old, \"bulwark-evolve\"), the old one gone", async () => {
        const board = await makeTestBoard()
        const se = board.secureElement
        await se.generateSecret(1)
        const old = Buffer.from(chipSlots(board)[1].secret as string, "hex")
        const macBefore = await se.hmac(1, Buffer.from("record"))

        await se.evolveSecret(1)

        const now = Buffer.from(chipSlots(board)[1].secret as string, "hex")
        expect(macBefore).toEqual(createHmac("sha256", old).update("record").digest())
        expect(now).toEqual(createHmac("sha256", old).update("bulwark-evolve").digest())
        expect(await se.hmac(1, Buffer.from("record"))).not.toEqual(macBefore)
        expect(readFileSync(join(board.dir, "se.json"), "utf8").includes(old.toString("hex"))).toBe(
            false
        )
    })

    it("counters only rise and survive a power cycle", async () => {
        const board = await makeTestBoard()

        expect(await board.secureElement.incrementCounter(2)).toBe(1)
        expect(await board.secureElement.incrementCounter(2)).toBe(2)
        const next = await board.powerCycle()

        expect(await next.secureElement.readCounter(2)).toBe(2)
        expect(await next.secureElement.readCounter(0)).toBe(0)
        expect(await seCode(next.secureElement.incrementCounter(4))).toBe("counter")
    })

    it("GP-TM-31: zeroize wipes keys and secrets, keeps counters, and says so on use", async () => {
        const board = await makeTestBoard()
        const se = board.secureElement
        await se.generateKey(0)
        await se.generateSecret(1)
        await se.incrementCounter(0)

        await se.zeroize()

        expect(await seCode(se.signDigest(0, Buffer.alloc(32)))).toBe("zeroized")
        expect(await seCode(se.hmac(1, Buffer.alloc(1)))).toBe("zeroized")
        expect(await seCode(se.publicKey(2))).toBe("empty")
        expect(await se.readCounter(0)).toBe(1)
        const leftovers = chipSlots(board).filter((s) => s.privateKey || s.secret)
        expect(leftovers).toEqual([])
        expect((await se.generateKey(0)).length).toBe(65)
    })

    it("random returns fresh bytes of the asked length", async () => {
        const board = await makeTestBoard()

        const a = await board.secureElement.random(32)
        const b = await board.secureElement.random(32)

        expect(a.length).toBe(32)
        expect(a.equals(b)).toBe(false)
        expect(await seCode(board.secureElement.random(-1))).toBe("input")
    })
})
