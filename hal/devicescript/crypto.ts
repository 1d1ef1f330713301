/**
 * The Crypto contract on DeviceScript (hal/crypto.ts; GP-TM-34, GP-TM-38): SHA-256, HMAC and
 * AES-256-CCM run natively through @devicescript/crypto; HKDF (RFC 5869) is built on the
 * native HMAC. The native CCM takes no associated data, so a non-empty `aad` is refused
 * (UnsupportedError "aead-aad") rather than silently dropped. SLH-DSA-SHA2-128s is verified
 * by the portable verifier (boot/slhdsa.ts) when the caller hands it in; ECDSA and Ed25519
 * are refused (UnsupportedError), never skipped.
 */

import * as ds from "@devicescript/core"
import { decrypt, digest, encrypt, hmac } from "@devicescript/crypto"
import { Crypto, Sha256, SignatureAlgorithm } from "../crypto"
import { CryptoError, UnsupportedError } from "../errors"

const KEY_BYTES = 32
const NONCE_BYTES = 13
const TAG_BYTES = 16
const HASH_BYTES = 32

function checkBuffer(value: Buffer, name: string): void {
    if (!(value instanceof Buffer)) throw new CryptoError("input", name + " must be a Buffer")
}

function checkParts(parts: Buffer[]): void {
    if (!Array.isArray(parts)) throw new CryptoError("input", "parts must be a list of Buffers")
    for (let i = 0; i < parts.length; i++) checkBuffer(parts[i], "parts[" + i + "]")
}

/**
 * SHA-256 that buffers its input and hashes it once at digest(): the native API hashes a
 * list of buffers in one call and keeps no state between calls.
 */
class BufferedSha256 implements Sha256 {
    private parts: Buffer[] = []
    private spent = false

    update(data: Buffer): void {
        if (this.spent) throw new CryptoError("input", "sha256 already finished")
        checkBuffer(data, "data")
        this.parts.push(data)
    }

    digest(): Buffer {
        if (this.spent) throw new CryptoError("input", "sha256 already finished")
        this.spent = true
        const out = digest("sha256", ...this.parts)
        this.parts = []
        return out
    }
}

function checkAead(key: Buffer, nonce: Buffer, aad: Buffer): void {
    checkBuffer(key, "key")
    checkBuffer(nonce, "nonce")
    checkBuffer(aad, "aad")
    if (key.length !== KEY_BYTES) throw new CryptoError("input", "key must be 32 bytes")
    if (nonce.length !== NONCE_BYTES) throw new CryptoError("input", "nonce must be 13 bytes")
    if (aad.length > 0) throw new UnsupportedError("aead-aad")
}

/**
 * A signature verifier written in portable code on top of this Crypto (boot/slhdsa.ts
 * slhDsaVerify). It must await `yieldNow` often: DeviceScript kills a fiber that runs about
 * 128k bytecode steps without an await.
 */
export type PortableVerifier = (
    crypto: Crypto,
    publicKey: Buffer,
    message: Buffer,
    signature: Buffer,
    options: { yieldNow: () => Promise<void> }
) => Promise<boolean>

async function yieldToRuntime(): Promise<void> {
    await ds.sleep(0)
}

export class DeviceCrypto implements Crypto {
    private readonly slhDsa: PortableVerifier | undefined

    /** `slhDsa`: the portable SLH-DSA-SHA2-128s verifier (pure interface, empty context). */
    constructor(slhDsa?: PortableVerifier) {
        this.slhDsa = slhDsa
    }

    sha256(parts: Buffer[]): Buffer {
        checkParts(parts)
        return digest("sha256", ...parts)
    }

    createSha256(): Sha256 {
        return new BufferedSha256()
    }

    hmacSha256(key: Buffer, parts: Buffer[]): Buffer {
        checkBuffer(key, "key")
        checkParts(parts)
        return hmac(key, "sha256", ...parts)
    }

    /** RFC 5869: extract with `salt` (empty means HashLen zeros), expand to `length` bytes. */
    hkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
        checkBuffer(ikm, "ikm")
        checkBuffer(salt, "salt")
        checkBuffer(info, "info")
        if (!(length >= 1 && length <= 255 * HASH_BYTES) || Math.floor(length) !== length)
            throw new CryptoError("input", "length must be 1 to 8160")
        const prk = hmac(salt.length > 0 ? salt : Buffer.alloc(HASH_BYTES), "sha256", ikm)
        const blocks: Buffer[] = []
        let previous = Buffer.alloc(0)
        const counter = Buffer.alloc(1)
        for (let i = 1; i <= Math.ceil(length / HASH_BYTES); i++) {
            counter[0] = i
            previous = hmac(prk, "sha256", previous, info, counter)
            blocks.push(previous)
        }
        return Buffer.concat(...blocks).slice(0, length)
    }

    aeadSeal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
        checkAead(key, nonce, aad)
        checkBuffer(plaintext, "plaintext")
        return encrypt({
            data: plaintext,
            algo: "aes-256-ccm",
            key: key,
            iv: nonce,
            tagLength: TAG_BYTES,
        })
    }

    aeadOpen(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer {
        checkAead(key, nonce, aad)
        checkBuffer(sealed, "sealed")
        if (sealed.length < TAG_BYTES) throw new CryptoError("auth", "sealed data too short")
        let opened: Buffer = null
        try {
            opened = decrypt({
                data: sealed,
                algo: "aes-256-ccm",
                key: key,
                iv: nonce,
                tagLength: TAG_BYTES,
            })
        } catch (e) {
            // The runtime throws a plain Error on a tag mismatch; inputs were checked above.
            throw new CryptoError("auth", "authentication tag does not verify")
        }
        if (!(opened instanceof Buffer))
            throw new CryptoError("auth", "authentication tag does not verify")
        return opened
    }

    verifiers(): SignatureAlgorithm[] {
        return this.slhDsa ? ["slh-dsa-sha2-128s"] : []
    }

    async verify(
        algorithm: SignatureAlgorithm,
        publicKey: Buffer,
        message: Buffer,
        signature: Buffer
    ): Promise<boolean> {
        if (algorithm === "slh-dsa-sha2-128s" && this.slhDsa) {
            const options = { yieldNow: yieldToRuntime }
            return await this.slhDsa(this, publicKey, message, signature, options)
        }
        throw new UnsupportedError("signature:" + algorithm)
    }
}

/**
 * Known-answer self-test of the native primitives (FIPS 180-2 "abc", an HMAC and a CCM round
 * trip), run at start so a broken runtime is refused before any key is used (GP-TM-16).
 * Returns the name of the first failing check, or null.
 */
export function cryptoSelfTest(crypto: Crypto): string | null {
    const abc = crypto.sha256([Buffer.from("abc")]).toString("hex")
    if (abc !== "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        return "sha256"
    const mac = crypto.hmacSha256(Buffer.from("key"), [Buffer.from("bulwark")])
    if (mac.length !== HASH_BYTES) return "hmac"
    const key = crypto.hkdf(Buffer.from("self-test"), Buffer.alloc(0), Buffer.from("ccm"), 32)
    const nonce = Buffer.alloc(NONCE_BYTES)
    const sealed = crypto.aeadSeal(key, nonce, Buffer.alloc(0), Buffer.from("bulwark"))
    const opened = crypto.aeadOpen(key, nonce, Buffer.alloc(0), sealed)
    if (opened.toString("hex") !== Buffer.from("bulwark").toString("hex")) return "aead"
    sealed[0] = sealed[0] ^ 1
    try {
        crypto.aeadOpen(key, nonce, Buffer.alloc(0), sealed)
        return "aead-tamper"
    } catch (e) {
        if (!(e instanceof CryptoError)) return "aead-tamper"
    }
    return null
}
