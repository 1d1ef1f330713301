/**
 * The fleet CA and provisioning ceremony: keys made in the secure element, certificates with
 * the device's own subject, no secret shared by two devices, the setup code kept only as a
 * salted slow hash, refusals of a second provisioning (GP-TM-09, 21, 34, 35, 37, 49).
 */

import { createPrivateKey, X509Certificate } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { PARTITION_IDENTITY, readIdentity, verifySetupCode } from "../../src/identity"
import { CA_KEY_FILE } from "../../tools/ca"
import { readRegistry } from "../../tools/provision"
import { CliResult, runCli } from "../helpers/cli"
import { removeTempDirs, tempDir } from "./fixtures"

let caDir: string

const run = runCli

/** A fresh, switched-off test board; returns its directory. */
function identityOf(board: SimBoard) {
    const partition = board.flash.partition(PARTITION_IDENTITY)
    return readIdentity(board.crypto, board.secureElement, partition)
}

async function newDevice(): Promise<string> {
    const board = await makeTestBoard()
    board.close()
    return board.dir
}

/** The identity key's private scalar, through the sim-only TLS-engine path (not the HAL). */
function privateScalar(board: SimBoard): Buffer {
    const pem = board.secureElement.tlsPrivateKeyPem(SE_SLOT_IDENTITY)
    const jwk = createPrivateKey(pem).export({ format: "jwk" })
    return Buffer.from(jwk.d as string, "base64url")
}

const B_ID = "kitchen-sensor-2"

let devA: string
let devB: string
let provA: CliResult
let provB: CliResult

beforeAll(async () => {
    caDir = join(tempDir("bulwark-prov-"), "ca")
    expect((await run(["ca", "new", "--out", caDir, "--json"])).code).toBe(0)
    devA = await newDevice()
    devB = await newDevice()
    provA = await run(["provision", "--dir", devA, "--ca", caDir, "--json"])
    provB = await run(["provision", "--dir", devB, "--ca", caDir, "--id", B_ID, "--json"])
})

afterAll(() => {
    cleanupTestBoards()
    removeTempDirs()
})

describe("fleet CA (GP-TM-35, GP-TM-37)", () => {
    it("GP-TM-35: the CA key is written with mode 0600", () => {
        expect(statSync(join(caDir, CA_KEY_FILE)).mode & 0o777).toBe(0o600)
    })

    it("GP-TM-35: a second `ca new` in one directory is refused, the key unchanged", async () => {
        const before = readFileSync(join(caDir, CA_KEY_FILE))

        const again = await run(["ca", "new", "--out", caDir, "--json"])

        expect(again.code).toBe(1)
        expect(readFileSync(join(caDir, CA_KEY_FILE))).toEqual(before)
    })

    it("GP-TM-37: broker and operator certificates carry their role and usage", async () => {
        const dir = tempDir("bulwark-issue-")
        const broker = await run(["ca", "issue-broker", "--ca", caDir, "--host", "localhost",
            "--host", "127.0.0.1", "--out", join(dir, "broker"), "--json"])
        const op = await run(["ca", "issue-operator", "--ca", caDir, "--name", "alice", "--out",
            join(dir, "op"), "--json"])

        expect(broker.code).toBe(0)
        expect(op.code).toBe(0)
        const b = new X509Certificate(readFileSync(join(dir, "broker", "cert.pem")))
        expect(b.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1")
        expect(b.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"])
        const o = new X509Certificate(readFileSync(join(dir, "op", "cert.pem")))
        expect(o.subject).toBe("CN=operator:alice\nOU=operator")
        expect(o.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"])
        expect(statSync(join(dir, "op", "key.pem")).mode & 0o777).toBe(0o600)
        expect(readRegistry(caDir).operators.map((x) => x.name)).toEqual(["alice"])
    })
})

describe("provisioning (GP-TM-09, GP-TM-21, GP-TM-34, GP-TM-35, GP-TM-49)", () => {
    it("GP-TM-21: the device certificate names it, is short-lived and client-auth", async () => {
        expect(provA.code).toBe(0)
        const board = await SimBoard.open(devA)
        const identity = (await identityOf(board))!
        const cert = new X509Certificate(identity.certificatePem)
        const ca = new X509Certificate(readFileSync(join(caDir, "ca.cert.pem")))

        expect(provA.json.deviceId).toMatch(/^dev-[0-9a-f]{12}$/)
        expect(cert.subject).toBe(`CN=${provA.json.deviceId}\nOU=device`)
        expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"])
        expect(cert.verify(ca.publicKey)).toBe(true)
        const days = (Date.parse(cert.validTo) - Date.now()) / 86400000
        expect(days).toBeLessThanOrEqual(90)
        expect(days).toBeGreaterThan(89)
        const pub = await board.secureElement.publicKey(SE_SLOT_IDENTITY)
        expect(cert.publicKey.export({ format: "der", type: "spki" }).subarray(-65)).toEqual(pub)
        board.close()
    })

    it("GP-TM-49: two devices share no key, certificate or setup code", async () => {
        const a = await SimBoard.open(devA)
        const b = await SimBoard.open(devB)

        expect(provB.json.deviceId).toBe(B_ID)
        expect(await a.secureElement.publicKey(0)).not.toEqual(await b.secureElement.publicKey(0))
        expect(privateScalar(a)).not.toEqual(privateScalar(b))
        expect(provA.json.certSerial).not.toBe(provB.json.certSerial)
        expect(provA.json.setupCode).not.toBe(provB.json.setupCode)
        expect(provA.json.setupCode).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/)
        a.close()
        b.close()
    })

    it("GP-TM-35: the private key is in no HAL answer, partition, registry or output", async () => {
        const other = await SimBoard.open(devB)
        const peer = await other.secureElement.publicKey(0)
        other.close()
        const board = await SimBoard.open(devA)
        const d = privateScalar(board)
        const se = board.secureElement
        const answers: Buffer[] = [
            await se.publicKey(0),
            await se.signDigest(0, Buffer.alloc(32, 7)),
            await se.ecdh(0, peer),
            await se.random(64),
        ]
        for (const name of board.flash.partitionNames()) {
            const p = board.flash.partition(name)
            answers.push(await p.read(0, p.size))
        }
        answers.push(readFileSync(join(caDir, "registry.json")), Buffer.from(provA.stdout))

        for (const bytes of answers) {
            expect(bytes.includes(d)).toBe(false)
            expect(bytes.toString("hex").includes(d.toString("hex"))).toBe(false)
            expect(bytes.toString("latin1").includes(d.toString("base64url"))).toBe(false)
        }
        board.close()
    })

    it("GP-TM-09: the setup code is kept only as a salted slow hash, which verifies", async () => {
        const board = await SimBoard.open(devA)
        const part = board.flash.partition(PARTITION_IDENTITY)
        const identity = (await readIdentity(board.crypto, board.secureElement, part))!
        const code: string = provA.json.setupCode
        const registry = readFileSync(join(caDir, "registry.json"))
        const stored = Buffer.concat([await part.read(0, part.size), registry])

        expect(stored.toString("latin1")).not.toContain(code)
        expect(stored.toString("latin1")).not.toContain(code.replace(/-/g, ""))
        expect(identity.setupCode.alg).toBe("pbkdf2-hmac-sha256")
        expect(identity.setupCode.iterations).toBeGreaterThanOrEqual(100000)
        const verify = (typed: string) =>
            verifySetupCode(board.crypto, board.clock, typed, identity.setupCode)
        expect(await verify(code)).toBe(true)
        expect(await verify(provB.json.setupCode)).toBe(false)
        board.close()
    })

    it("GP-TM-21: provisioning a device twice is refused (exit 1), changing nothing", async () => {
        const before = readFileSync(join(caDir, "registry.json"))

        const again = await run(["provision", "--dir", devA, "--ca", caDir, "--json"])

        expect(again.code).toBe(1)
        expect(again.json.refused).toMatch(/already provisioned/)
        expect(readFileSync(join(caDir, "registry.json"))).toEqual(before)
    })

    it("GP-TM-21: an id already registered is refused before the device makes a key", async () => {
        const dev = await newDevice()

        const taken = await run(["provision", "--dir", dev, "--ca", caDir, "--id", B_ID, "--json"])

        expect(taken.code).toBe(1)
        const board = await SimBoard.open(dev)
        await expect(board.secureElement.publicKey(0)).rejects.toMatchObject({ code: "empty" })
        board.close()
    })

    it("bad usage: a missing device directory or a bad id exits 2", async () => {
        const missing = join(caDir, "nope")
        const dev = await newDevice()

        const noDevice = await run(["provision", "--dir", missing, "--ca", caDir, "--json"])
        const badId = await run(["provision", "--dir", dev, "--ca", caDir, "--id", "Bad/Id"])

        expect(noDevice.code).toBe(2)
        expect(badId.code).toBe(2)
    })

    it("GP-TM-35: renewal issues a new certificate for the same secure-element key", async () => {
        const renewed = await run(["provision", "renew", "--dir", devB, "--ca", caDir, "--json"])

        expect(renewed.code).toBe(0)
        expect(renewed.json.certSerial).not.toBe(provB.json.certSerial)
        const board = await SimBoard.open(devB)
        const identity = (await identityOf(board))!
        const cert = new X509Certificate(identity.certificatePem)
        expect(cert.serialNumber.toLowerCase()).toBe(renewed.json.certSerial.toLowerCase())
        const entry = readRegistry(caDir).devices.find((x) => x.id === B_ID)!
        expect(entry.previousSerials).toEqual([provB.json.certSerial])
        board.close()
    })

    it("GP-TM-48: a revoked device's serials go on the brokers' refusal list", async () => {
        const revoked = await run(["ca", "revoke", "--ca", caDir, "--id", B_ID, "--json"])

        expect(revoked.code).toBe(0)
        const registry = readRegistry(caDir)
        expect(registry.revokedSerials).toContain(provB.json.certSerial)
        const renewAfter = await run(["provision", "renew", "--dir", devB, "--ca", caDir, "--json"])
        expect(renewAfter.code).toBe(1)
    })
})
