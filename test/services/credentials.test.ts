/**
 * Owner-password policy and the stored form of credentials (GP-TM-22, GP-TM-23, GP-TM-24):
 * weak, blank, default and common passwords are refused with their reason; hashes are
 * salted PBKDF2-HMAC-SHA256 matching RFC 7914's test vectors; records are parsed strictly.
 */

import { pbkdf2Sync } from "node:crypto"
import { describe, expect, it } from "vitest"
import {
    CredentialError,
    checkPasswordPolicy,
    decodePasswordRecord,
    encodePasswordRecord,
    hashPassword,
    pbkdf2Sha256,
    verifyPassword,
} from "../../src/credentials"
import { SimCrypto } from "../../sim/crypto"

const crypto = new SimCrypto()
const context = {
    deviceId: "dev-3fa94c0e12ab",
    setupCode: "K7QX-9MNP-2RTW",
    deviceClass: "bulwark-demo-sensor",
    username: "owner",
}

describe("password policy", () => {
    it("GP-TM-22: refuses a blank password", () => {
        expect(checkPasswordPolicy("", context)).toEqual({ ok: false, reason: "blank" })
        expect(checkPasswordPolicy("              ", context).reason).toBe("blank")
    })

    it("GP-TM-22: refuses default and common passwords, also with digits appended", () => {
        for (const pw of ["admin", "password", "changeme", "123456", "qwertyuiop"])
            expect(checkPasswordPolicy(pw, context).ok).toBe(false)
        for (const pw of ["password1234", "Password2024!", "administrator1", "1234qwerty1234"])
            expect(checkPasswordPolicy(pw, context).reason).toBe("common")
    })

    it("GP-TM-23: refuses short, repetitive and sequential passwords", () => {
        expect(checkPasswordPolicy("Tr0ub4dor&3", context).reason).toBe("too-short")
        expect(checkPasswordPolicy("aaaaaaaaaaaaaaaa", context).reason).toBe("repetitive")
        expect(checkPasswordPolicy("abcdefghijklmnop", context).reason).toBe("repetitive")
        expect(checkPasswordPolicy("xyz1xyz1xyz1xyz1", context).reason).toBe("repetitive")
        expect(checkPasswordPolicy("x".repeat(129), context).reason).toBe("too-long")
        expect(checkPasswordPolicy("tab\there-is-bad-x", context).reason).toBe("control-character")
    })

    it("GP-TM-22: refuses a password derived from the device id, class or setup code", () => {
        expect(checkPasswordPolicy("K7QX9MNP2RTW-mine", context).reason).toBe("derived-from-device")
        expect(checkPasswordPolicy("my-3fa94c0e12ab-pw", context).reason).toBe(
            "derived-from-device"
        )
        expect(checkPasswordPolicy("the sensor is mine", context).reason).toBe(
            "derived-from-device"
        )
    })

    it("accepts a long passphrase", () => {
        expect(checkPasswordPolicy("correct horse battery staple", context)).toEqual({
            ok: true,
            reason: "ok",
        })
    })
})

describe("password hashing", () => {
    it("GP-TM-24: PBKDF2-HMAC-SHA256 over the HAL Crypto matches Node's pbkdf2", async () => {
        const salt = Buffer.from("salt")

        const ours = await pbkdf2Sha256(crypto, Buffer.from("passwd"), salt, 1)
        const many = await pbkdf2Sha256(crypto, Buffer.from("Password"), Buffer.from("NaCl"), 80000)

        expect(ours).toEqual(pbkdf2Sync("passwd", salt, 1, 32, "sha256"))
        // RFC 7914 section 11, second PBKDF2-HMAC-SHA256 vector (first 32 bytes).
        expect(many.toString("hex")).toBe(
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        )
    })

    it("GP-TM-24: stores a salted hash; the same password under two salts differs", async () => {
        const a = await hashPassword(crypto, Buffer.alloc(16, 1), "correct horse battery", 1000)
        const b = await hashPassword(crypto, Buffer.alloc(16, 2), "correct horse battery", 1000)

        expect(a.hash.equals(b.hash)).toBe(false)
        expect(encodePasswordRecord(a).includes(Buffer.from("correct horse"))).toBe(false)
        expect(await verifyPassword(crypto, a, "correct horse battery")).toBe(true)
        expect(await verifyPassword(crypto, a, "correct horse batterY")).toBe(false)
    })

    it("round-trips a record and refuses damaged or downgraded ones", async () => {
        const rec = await hashPassword(crypto, Buffer.alloc(16, 7), "a long pass phrase", 1000)
        const bytes = encodePasswordRecord(rec)

        expect(decodePasswordRecord(bytes)).toEqual(rec)
        const weak = Buffer.from(bytes)
        weak.writeUInt32BE(10, 2)
        expect(() => decodePasswordRecord(weak)).toThrow(CredentialError)
        expect(() => decodePasswordRecord(bytes.subarray(1))).toThrow(CredentialError)
        const alg = Buffer.from(bytes)
        alg[1] = 9
        expect(() => decodePasswordRecord(alg)).toThrow(/algorithm/)
    })
})
