/**
 * The app's power-on self-test (src/selftest.ts): known-answer tests of the crypto the
 * firmware trusts. A board whose SHA-256 or HMAC answers wrongly fails it, so an update on
 * trial there is never confirmed (GP-TM-16, GP-TM-56).
 */

import { describe, expect, it } from "vitest"

import { Crypto } from "../../hal/crypto"
import { SimCrypto } from "../../sim/crypto"
import { runSelfTest } from "../../src/selftest"

/** A crypto whose chosen primitive flips one bit of its output: a faulty or tampered board. */
function faulty(which: "sha256" | "stream" | "hmac"): Crypto {
    const good = new SimCrypto()
    const flip = (b: Buffer) => {
        const out = Buffer.from(b)
        out[0] ^= 1
        return out
    }
    const bad = Object.create(good) as Crypto
    if (which === "sha256") bad.sha256 = (parts) => flip(good.sha256(parts))
    if (which === "hmac") bad.hmacSha256 = (key, parts) => flip(good.hmacSha256(key, parts))
    if (which === "stream")
        bad.createSha256 = () => {
            const inner = good.createSha256()
            return { update: (d: Buffer) => inner.update(d), digest: () => flip(inner.digest()) }
        }
    return bad
}

describe("self-test", () => {
    it("GP-TM-56: passes on a sound board", () => {
        expect(runSelfTest(new SimCrypto())).toEqual({ ok: true, failed: [] })
    })

    it("GP-TM-16/56: names each primitive that gives a wrong known answer", () => {
        expect(runSelfTest(faulty("sha256")).failed).toEqual(["sha256"])
        expect(runSelfTest(faulty("stream")).failed).toEqual(["sha256-stream"])
        expect(runSelfTest(faulty("hmac")).failed).toEqual(["hmac-sha256"])
    })
})
