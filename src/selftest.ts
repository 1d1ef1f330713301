/**
 * Power-on self-test of the app (GP-TM-16, GP-TM-18): known-answer tests of the crypto the
 * firmware relies on, run before an update may confirm itself. A board whose SHA-256 or
 * HMAC gives a wrong answer must not confirm anything it verified with them.
 */

import { Crypto } from "../hal/crypto"

export interface SelfTestResult {
    ok: boolean
    failed: string[]
}

/** FIPS 180-2 appendix B.1: SHA-256("abc"). */
const SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/** RFC 4231 test case 2: HMAC-SHA-256(key "Jefe", "what do ya want for nothing?"). */
const HMAC_JEFE = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

export function runSelfTest(crypto: Crypto): SelfTestResult {
    const failed: string[] = []
    if (crypto.sha256([Buffer.from("abc")]).toString("hex") !== SHA256_ABC) failed.push("sha256")
    const stream = crypto.createSha256()
    stream.update(Buffer.from("a"))
    stream.update(Buffer.from("bc"))
    if (stream.digest().toString("hex") !== SHA256_ABC) failed.push("sha256-stream")
    const mac = crypto.hmacSha256(Buffer.from("Jefe"), [
        Buffer.from("what do ya want "),
        Buffer.from("for nothing?"),
    ])
    if (mac.toString("hex") !== HMAC_JEFE) failed.push("hmac-sha256")
    return { ok: failed.length === 0, failed: failed }
}
