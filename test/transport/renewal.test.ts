/**
 * Certificate renewal on the device (src/renewal.ts, src/app-renewal.ts; docs/provisioning.md,
 * "Renewal over the network"): a renewal from a listed operator for the device's own key, CN
 * and fleet CA goes on trial and is confirmed or reverted; every forged, replayed, misdirected
 * or mismatched message is refused with its check in the audit log and "refused" alone on
 * cert/status, and the identity partition stays byte for byte as it was; a power cut at every
 * flash operation of install, confirm and revert leaves a valid identity, the old or the new;
 * the decoder throws nothing but RenewalError "format". GP-TM-21, GP-TM-35, GP-TM-53,
 * GP-TM-54, GP-TM-55.
 */

import { X509Certificate, createPublicKey, generateKeyPairSync } from "node:crypto"
import { cpSync } from "node:fs"
import { join } from "node:path"

import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { isPowerLoss } from "../../hal/errors"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { InboundMessage } from "../../src/app-routes"
import { certHandler, newRenewalTrial } from "../../src/app-renewal"
import { AuditEntry } from "../../src/audit/record"
import { DeviceIdentity, PARTITION_IDENTITY, readIdentity } from "../../src/identity"
import {
    KIND_CERTIFICATE,
    KIND_KEY_REQUEST,
    REFUSED_STATUS,
    RenewalContext,
    RenewalError,
    confirmRenewal,
    decodeRenewal,
    revertRenewal,
    serveRenewal,
} from "../../src/renewal"
import { DeviceSession } from "../../src/session"
import { derToPem, parseCertificate, pemToDer } from "../../src/x509"
import { SimBoard } from "../../sim/board"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { FleetCa, Validity, issueDeviceCertificate } from "../../tools/ca"
import { RefusedError } from "../../tools/args"
import { provision, readRegistry, renewRegistered } from "../../tools/provision"
import { signRenewal } from "../../tools/renew-online"
import { Fleet, makeFleet, removeTempDirs, tempDir } from "./fixtures"

let fleet: Fleet
let otherFleet: Fleet
let twinFleet: Fleet
let template: string
let deviceId: string
let devicePub: Buffer
const operatorPem = newKeyPem()
const strangerPem = newKeyPem()
const boards: SimBoard[] = []

function newKeyPem(): string {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    return privateKey.export({ format: "pem", type: "pkcs8" }) as string
}

function publicOf(keyPem: string): Buffer {
    const jwk = createPublicKey(keyPem).export({ format: "jwk" })
    return Buffer.concat([
        Buffer.from([4]),
        Buffer.from(jwk.x as string, "base64url"),
        Buffer.from(jwk.y as string, "base64url"),
    ])
}

beforeAll(async () => {
    fleet = await makeFleet("Renewal fleet")
    otherFleet = await makeFleet("Another fleet")
    twinFleet = await makeFleet("Renewal fleet")
    const fresh = await makeTestBoard()
    fresh.close()
    template = fresh.dir
    deviceId = (await provision({ devDir: template, caDir: fleet.caDir, iterations: 1000 }))
        .deviceId
    const board = await SimBoard.open(template)
    devicePub = await board.secureElement.publicKey(SE_SLOT_IDENTITY)
    board.close()
})

afterAll(() => {
    for (const b of boards) b.close()
    cleanupTestBoards()
    removeTempDirs()
})

/** A copy of the provisioned template board, powered on. */
async function freshBoard(): Promise<SimBoard> {
    const dir = join(tempDir("bulwark-renewal-"), "dev")
    cpSync(template, dir, { recursive: true })
    const board = await SimBoard.open(dir)
    boards.push(board)
    return board
}

function contextOf(board: SimBoard, keys: Buffer[] = [publicOf(operatorPem)]): RenewalContext {
    return {
        secureElement: board.secureElement,
        crypto: board.crypto,
        clock: board.clock,
        partition: board.flash.partition(PARTITION_IDENTITY),
        deviceId,
        operatorKeys: keys,
        recentNonces: [],
    }
}

async function certificateDer(
    ca: FleetCa,
    id = deviceId,
    key = devicePub,
    validity?: Validity
): Promise<Buffer> {
    const issued = await issueDeviceCertificate(ca, id, key, validity)
    return Buffer.from(new X509Certificate(issued.certPem).raw)
}

async function identityBytes(board: SimBoard): Promise<Buffer> {
    const p = board.flash.partition(PARTITION_IDENTITY)
    return await p.read(0, p.size)
}

async function identityOf(board: SimBoard): Promise<DeviceIdentity | null> {
    return readIdentity(board.crypto, board.secureElement, board.flash.partition(PARTITION_IDENTITY))
}

function serialOf(pem: string): string {
    return new X509Certificate(pem).serialNumber.toLowerCase()
}

/** The app's route on `board`: what it audits, what it publishes, whether it reconnected. */
function routeOn(ctx: RenewalContext) {
    const audit: AuditEntry[] = []
    const replies: string[] = []
    let reconnects = 0
    const session = {
        reconnect: async () => {
            reconnects++
        },
    } as unknown as DeviceSession
    const trial = newRenewalTrial()
    const handle = certHandler(ctx, async (_s, p) => {
        replies.push(p.toString())
    }, (e) => audit.push(e), trial, session)
    return {
        audit,
        replies,
        trial,
        reconnects: () => reconnects,
        send: (payload: Buffer) => handle({ kind: "renew", payload } as InboundMessage, ["renew"]),
    }
}

describe("certificate renewal on the device", () => {
    it("GP-TM-35: a certificate for its own key from the fleet CA goes on trial, then confirm drops the previous one",
        async () => {
            const board = await freshBoard()
            const before = (await identityOf(board))!
            const der = await certificateDer(fleet.ca)
            const route = routeOn(contextOf(board))

            await route.send(signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0, der))
            const onTrial = (await identityOf(board))!
            const confirmed = await confirmRenewal(contextOf(board))
            const after = (await identityOf(board))!

            expect(route.audit[0]).toMatchObject({ event: "cert-renewal", outcome: "success" })
            expect(route.audit[0].detail).toMatch(/^step=installed serial=/)
            expect(route.trial.onTrial).toBe(true)
            expect(route.reconnects()).toBe(1)
            expect(route.replies).toEqual([])
            expect(serialOf(onTrial.certificatePem)).toBe(parseCertificate(der).serial.toString("hex"))
            expect(onTrial.previousCertificatePem).toBe(before.certificatePem)
            expect(confirmed).toBe(true)
            expect(after.previousCertificatePem).toBeUndefined()
            expect(pemToDer(after.certificatePem)).toEqual(der)
            expect({ ...after, certificatePem: "" }).toEqual({ ...before, certificatePem: "" })
        })

    it("GP-TM-35: revert puts the previous certificate back when the broker refuses the new one",
        async () => {
            const board = await freshBoard()
            const before = (await identityOf(board))!
            const ctx = contextOf(board)

            const out = await serveRenewal(ctx, signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                await certificateDer(fleet.ca)))
            const reverted = await revertRenewal(ctx)

            expect(out).toMatchObject({ check: "ok", installed: true })
            expect(reverted).toBe(true)
            expect(await identityOf(board)).toEqual(before)
        })

    it("GP-TM-21: a key request from a listed operator is answered with the identity public key",
        async () => {
            const board = await freshBoard()
            const route = routeOn(contextOf(board))

            await route.send(signRenewal(operatorPem, KIND_KEY_REQUEST, deviceId, 0, Buffer.alloc(0)))

            expect(JSON.parse(route.replies[0])).toEqual({ ok: true, publicKey: devicePub.toString("hex") })
            expect(route.audit[0]).toMatchObject({ outcome: "info", detail: "step=key-request" })
        })

    it("GP-TM-35: unknown operator, device key, bad signature, replay, another device, key, CN or CA: refused, audited, identity unchanged",
        async () => {
            const board = await freshBoard()
            const clock = board.clock as unknown as { setWallTime(t: number): void }
            clock.setWallTime(2_000_000_000)
            const good = await certificateDer(fleet.ca)
            const deviceKeyPem = board.secureElement.tlsPrivateKeyPem(SE_SLOT_IDENTITY)
            const replayed = signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0, good)
            const forged = signRenewal(strangerPem, KIND_CERTIFICATE, deviceId, 0, good)
            const forgedBody = Buffer.from(forged)
            publicOf(operatorPem).copy(forgedBody, forgedBody.length - 64 - 2 - good.length - 65)
            const otherKey = publicOf(newKeyPem())
            const older = await certificateDer(fleet.ca, deviceId, devicePub,
                { notBefore: new Date(Date.now() - 86400_000), days: 90 })
            const cases: [string, Buffer][] = [
                ["operator", forged],
                ["operator", signRenewal(deviceKeyPem, KIND_CERTIFICATE, deviceId, 0, good)],
                ["signature", forgedBody],
                ["device", signRenewal(operatorPem, KIND_CERTIFICATE, "dev-other", 0, good)],
                ["expired", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 1_999_999_999, good)],
                ["key", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                    await certificateDer(fleet.ca, deviceId, otherKey))],
                ["subject", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                    await certificateDer(fleet.ca, "dev-other", devicePub))],
                ["issuer", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                    await certificateDer(otherFleet.ca))],
                ["chain", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                    await certificateDer(twinFleet.ca))],
                ["stale", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0, older)],
                ["certificate", signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                    Buffer.from("30030201ff", "hex"))],
                ["format", Buffer.from("BWCR not a renewal")],
            ]
            const ctx = contextOf(board)
            const route = routeOn(ctx)
            const bytes = await identityBytes(board)

            for (const [, message] of cases) await route.send(message)
            const unchanged = await identityBytes(board)
            await route.send(replayed)
            const installed = await identityBytes(board)
            await route.send(replayed)

            expect(route.audit.map((e) => e.detail)).toEqual([
                ...cases.map(([check]) => "check=" + check),
                expect.stringMatching(/^step=installed/),
                "check=replayed",
            ])
            expect(route.audit.every((e) => e.event === "cert-renewal")).toBe(true)
            expect(route.replies).toEqual(Array(cases.length + 1).fill(REFUSED_STATUS))
            expect(unchanged.equals(bytes)).toBe(true)
            expect((await identityBytes(board)).equals(installed)).toBe(true)
        })

    it("GP-TM-35: a power cut at every flash operation of install, confirm and revert leaves the old or the new identity",
        async () => {
            const tears: TearMode[] = ["prefix", "garbage", "none"]
            const der = await certificateDer(fleet.ca)
            const newSerial = parseCertificate(der).serial.toString("hex")
            const seen = new Set<string>()

            for (const finish of ["confirm", "revert"]) for (const tear of tears) {
                for (let ops = 0; ops < 16; ops++) {
                    let board = await freshBoard()
                    const oldSerial = serialOf((await identityOf(board))!.certificatePem)
                    const ctx = () => contextOf(board)
                    board.flash.armPowerCut(ops, tear)
                    let cut = false
                    try {
                        const out = await serveRenewal(ctx(), signRenewal(operatorPem,
                            KIND_CERTIFICATE, deviceId, 0, der))
                        expect(out.check).toBe("ok")
                        if (finish === "confirm") await confirmRenewal(ctx())
                        else await revertRenewal(ctx())
                    } catch (err) {
                        if (!isPowerLoss(err)) throw err
                        cut = true
                    }
                    board.flash.disarmPowerCut()
                    board = await board.powerCycle()
                    boards.push(board)
                    const identity = await identityOf(board)

                    expect(identity, `${finish} ${tear} cut after ${ops}`).not.toBeNull()
                    const serial = serialOf(identity!.certificatePem)
                    expect([oldSerial, newSerial]).toContain(serial)
                    if (identity!.previousCertificatePem !== undefined)
                        expect(serialOf(identity!.previousCertificatePem)).toBe(oldSerial)
                    seen.add(serial === newSerial ? "new" : "old")
                    if (!cut) {
                        expect(serial).toBe(finish === "confirm" ? newSerial : oldSerial)
                        break
                    }
                }
            }

            expect([...seen].sort()).toEqual(["new", "old"])
        })

    it("GP-TM-54: the decoder throws nothing but RenewalError \"format\", and serving changes nothing",
        async () => {
            const board = await freshBoard()
            const ctx = contextOf(board)
            const bytes = await identityBytes(board)
            const valid = signRenewal(operatorPem, KIND_CERTIFICATE, deviceId, 0,
                await certificateDer(fleet.ca))

            fc.assert(
                fc.property(fc.uint8Array({ maxLength: 1400 }), (raw) => {
                    try {
                        decodeRenewal(Buffer.from(raw))
                    } catch (err) {
                        expect(err).toBeInstanceOf(RenewalError)
                        expect((err as RenewalError).check).toBe("format")
                    }
                }),
                { numRuns: 2000 }
            )
            await fc.assert(
                fc.asyncProperty(
                    fc.integer({ min: 0, max: valid.length - 1 }),
                    fc.integer({ min: 1, max: 255 }),
                    async (at, flip) => {
                        const mutated = Buffer.from(valid)
                        mutated[at] ^= flip
                        const out = await serveRenewal(ctx, mutated)
                        expect(out.check).not.toBe("ok")
                        expect((await identityBytes(board)).equals(bytes)).toBe(true)
                    }
                ),
                { numRuns: 150 }
            )
        })

    it("GP-TM-49: the operator side certifies only the registered key: another key is refused and the registry is unchanged",
        async () => {
            const registry = readRegistry(fleet.caDir)
            const before = JSON.stringify(registry)
            const other = publicOf(newKeyPem())

            const refused = renewRegistered(fleet.ca, registry, deviceId, other)

            await expect(refused).rejects.toThrow(RefusedError)
            expect(JSON.stringify(registry)).toBe(before)
        })

    it("GP-TM-21: PEM and DER round-trip through the portable base64", async () => {
        const der = await certificateDer(fleet.ca)

        const pem = derToPem(der)

        expect(new X509Certificate(pem).raw.equals(der)).toBe(true)
        expect(pemToDer(pem).equals(der)).toBe(true)
        for (let n = 0; n < 5; n++) expect(pemToDer(derToPem(der.subarray(0, n)))).toEqual(der.subarray(0, n))
    })
})
