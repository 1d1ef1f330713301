/**
 * Signed telemetry (src/telemetry.ts, docs/telemetry.md; GP-TM-41): an envelope signed by
 * the identity key in the secure element, ordered by (boot number, sequence); the offline
 * verifier refuses altered, foreign, replayed, reordered and malformed envelopes, and
 * `bulwark telemetry verify` says so with exit 0, 1 or 2.
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"

import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_COUNTER_TELEMETRY, SE_SLOT_IDENTITY } from "../../hal/secure-element"
import {
    TELEMETRY_MAX_BODY,
    TelemetryError,
    TelemetryExpectation,
    TelemetrySigner,
    decodeTelemetry,
    encodeTelemetryBody,
} from "../../src/telemetry"
import { SimBoard } from "../../sim/board"
import { testProfileJson } from "../../sim/testing"
import { publicKeyPem } from "../../tools/audit-verify"
import { verifyTelemetryBytes } from "../../tools/telemetry"
import { runCli } from "../helpers/cli"
import { removeTempDirs, tempDir } from "../transport/fixtures"

const WALL = 1_800_000_000
const DEVICE = "dev-telemetry-1"
const BODY = Buffer.from('{"v":1,"version":"1.0.0","slot":"a","trial":false,"uptimeMs":300}')
const ANY: TelemetryExpectation = { deviceId: null, after: null }

let work: string
let board: SimBoard
let other: SimBoard
let devicePub: Buffer
let otherPub: Buffer

async function newBoard(name: string, wallTime?: number): Promise<SimBoard> {
    const dir = join(work, name)
    const created = await SimBoard.create(dir, { profile: testProfileJson(), trust: [], counter: 1 })
    created.close()
    return await SimBoard.open(dir, wallTime === undefined ? {} : { wallTime })
}

function signer(b: SimBoard, deviceId = DEVICE): TelemetrySigner {
    return new TelemetrySigner(b.secureElement, b.crypto, b.clock, deviceId)
}

/** The check a verification fails, or "accepted". */
async function outcome(pub: Buffer, bytes: Buffer, expect = ANY): Promise<string> {
    return await verifyTelemetryBytes(pub, bytes, expect).then(
        () => "accepted",
        (e) => (e instanceof TelemetryError ? e.check : "threw " + String(e))
    )
}

function formatCheck(bytes: Buffer): string {
    try {
        decodeTelemetry(bytes)
        return "decoded"
    } catch (e) {
        return e instanceof TelemetryError ? e.check : "threw " + String(e)
    }
}

beforeAll(async () => {
    work = tempDir("bulwark-telemetry-")
    board = await newBoard("device", WALL)
    devicePub = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
    other = await newBoard("other", WALL)
    otherPub = await other.secureElement.generateKey(SE_SLOT_IDENTITY)
})

afterAll(() => {
    board.close()
    other.close()
    removeTempDirs()
})

describe("signed telemetry envelope", () => {
    it("GP-TM-41: a signed telemetry envelope round-trips and verifies with the device key", async () => {
        const s = signer(board)

        const envelope = await s.sign(BODY)
        const m = await verifyTelemetryBytes(devicePub, envelope, { deviceId: DEVICE, after: null })

        expect(m).toMatchObject({ deviceId: DEVICE, boot: s.position().boot, seq: 1, time: WALL })
        expect(m.body.equals(BODY)).toBe(true)
        expect(envelope.subarray(0, 5).toString("latin1")).toBe("BWTM\x01")
        expect(envelope.length).toBe(20 + DEVICE.length + BODY.length + 64)
    })

    it("GP-TM-41: the boot number is taken once per boot from the SE counter; the sequence counts messages", async () => {
        const before = await board.secureElement.readCounter(SE_COUNTER_TELEMETRY)
        const s = signer(board)

        const first = decodeTelemetry(await s.sign(BODY)).message
        const second = decodeTelemetry(await s.sign(BODY)).message
        const third = decodeTelemetry(await s.sign(BODY)).message

        expect(await board.secureElement.readCounter(SE_COUNTER_TELEMETRY)).toBe(before + 1)
        expect([first.boot, second.boot, third.boot]).toEqual([before + 1, before + 1, before + 1])
        expect([first.seq, second.seq, third.seq]).toEqual([1, 2, 3])
    })

    it("GP-TM-41: telemetry signed while the wall time is unknown carries time 0", async () => {
        const b = await newBoard("no-clock")
        const pub = await b.secureElement.generateKey(SE_SLOT_IDENTITY)

        const m = await verifyTelemetryBytes(pub, await signer(b).sign(BODY), ANY)
        b.close()

        expect(m.time).toBe(0)
    })

    it("GP-TM-41: telemetry with a changed body byte is refused", async () => {
        const envelope = await signer(board).sign(BODY)
        const bodyStart = 20 + DEVICE.length

        for (let i = bodyStart; i < bodyStart + BODY.length; i++) {
            const altered = Buffer.from(envelope)
            altered[i] ^= 0x01
            expect(await outcome(devicePub, altered), `byte ${i}`).toBe("signature")
        }
    })

    it("GP-TM-41: telemetry with any other changed byte is refused (header, counters, signature)", async () => {
        const envelope = await signer(board).sign(BODY)

        for (let i = 0; i < envelope.length; i++) {
            const altered = Buffer.from(envelope)
            altered[i] ^= 0x01
            expect(["signature", "format"], `byte ${i}`).toContain(await outcome(devicePub, altered))
        }
    })

    it("GP-TM-41: telemetry signed by another device's key is refused", async () => {
        const foreign = await signer(other, DEVICE).sign(BODY)

        expect(await outcome(devicePub, foreign)).toBe("signature")
        expect(await outcome(otherPub, foreign)).toBe("accepted")
    })

    it("GP-TM-41: genuine telemetry of one device offered as another's is refused", async () => {
        const fromOther = await signer(other, "dev-telemetry-2").sign(BODY)

        const verdict = await outcome(otherPub, fromOther, { deviceId: DEVICE, after: null })

        expect(verdict).toBe("device")
    })

    it("GP-TM-41: a replayed or reordered telemetry message is refused", async () => {
        const s = signer(board)
        const first = await s.sign(BODY)
        const second = await s.sign(BODY)
        const { boot } = s.position()
        const last = { boot, seq: 2 }

        expect(await outcome(devicePub, second, { deviceId: DEVICE, after: last })).toBe("replayed")
        expect(await outcome(devicePub, first, { deviceId: DEVICE, after: last })).toBe("order")
        expect(await outcome(devicePub, first, { deviceId: DEVICE, after: { boot: boot + 1, seq: 0 } }))
            .toBe("order")
        expect(await outcome(devicePub, second, { deviceId: DEVICE, after: { boot, seq: 1 } }))
            .toBe("accepted")
        expect(await outcome(devicePub, first, { deviceId: DEVICE, after: { boot: boot - 1, seq: 99 } }))
            .toBe("accepted")
    })

    it("GP-TM-41: truncated or extended telemetry envelopes are TelemetryError format", async () => {
        const envelope = await signer(board).sign(BODY)

        for (let n = 0; n < envelope.length; n++)
            expect(formatCheck(envelope.subarray(0, n)), `length ${n}`).toBe("format")
        expect(formatCheck(Buffer.concat([envelope, Buffer.alloc(1)]))).toBe("format")
        expect(formatCheck(Buffer.concat([envelope, envelope]))).toBe("format")
        expect(await outcome(devicePub, envelope.subarray(0, envelope.length - 1))).toBe("format")
    })

    it("GP-TM-41: fields out of bounds are refused by the encoder and the decoder", async () => {
        const fields = { deviceId: DEVICE, boot: 1, seq: 1, time: 0, body: BODY }
        const encodeCheck = (patch: Record<string, unknown>): string => {
            try {
                encodeTelemetryBody({ ...fields, ...patch })
                return "encoded"
            } catch (e) {
                return e instanceof TelemetryError ? e.check : String(e)
            }
        }
        const signedPart = encodeTelemetryBody(fields)
        const withZeroBoot = Buffer.concat([signedPart, Buffer.alloc(64)])
        withZeroBoot.writeUInt32BE(0, 6 + DEVICE.length)

        expect(encodeCheck({ deviceId: "" })).toBe("format")
        expect(encodeCheck({ deviceId: "Dev/1" })).toBe("format")
        expect(encodeCheck({ boot: 0 })).toBe("format")
        expect(encodeCheck({ seq: 2 ** 32 })).toBe("format")
        expect(encodeCheck({ time: -1 })).toBe("format")
        expect(encodeCheck({ body: Buffer.alloc(TELEMETRY_MAX_BODY + 1) })).toBe("format")
        expect(formatCheck(withZeroBoot)).toBe("format")
        await expect(signer(board).sign(Buffer.alloc(TELEMETRY_MAX_BODY + 1))).rejects.toMatchObject({
            name: "TelemetryError", check: "format",
        })
    })

    it("GP-TM-41: the decoder throws only TelemetryError on arbitrary bytes and never accepts unsigned or random input", async () => {
        const genuine = await signer(board).sign(BODY)

        await fc.assert(
            fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (raw) => {
                const bytes = Buffer.from(raw)
                const decoded = formatCheck(bytes)
                expect(["decoded", "format"]).toContain(decoded)
                expect(["signature", "format"]).toContain(await outcome(devicePub, bytes))
            }),
            { numRuns: 300 }
        )
        // Well-formed envelopes with a random or absent signature: parsed, never accepted.
        await fc.assert(
            fc.asyncProperty(
                fc.integer({ min: 1, max: 0xffffffff }),
                fc.integer({ min: 1, max: 0xffffffff }),
                fc.uint8Array({ maxLength: 200 }),
                fc.uint8Array({ minLength: 64, maxLength: 64 }),
                async (boot, seq, body, sig) => {
                    const signed = encodeTelemetryBody({
                        deviceId: DEVICE, boot, seq, time: WALL, body: Buffer.from(body),
                    })
                    expect(formatCheck(Buffer.concat([signed, Buffer.from(sig)]))).toBe("decoded")
                    expect(await outcome(devicePub, Buffer.concat([signed, Buffer.from(sig)])))
                        .toBe("signature")
                    expect(await outcome(devicePub, signed)).toBe("format")
                }
            ),
            { numRuns: 100 }
        )
        // Single-byte mutations of a genuine envelope are never accepted.
        await fc.assert(
            fc.asyncProperty(
                fc.integer({ min: 0, max: genuine.length - 1 }),
                fc.integer({ min: 1, max: 255 }),
                async (at, flip) => {
                    const altered = Buffer.from(genuine)
                    altered[at] ^= flip
                    expect(["signature", "format"]).toContain(await outcome(devicePub, altered))
                }
            ),
            { numRuns: 200 }
        )
    })
})

describe("bulwark telemetry verify", () => {
    let pemFile: string
    let genuineFile: string
    let boot: number

    beforeAll(async () => {
        pemFile = join(work, "device.pem")
        writeFileSync(pemFile, publicKeyPem(devicePub))
        const s = signer(board)
        genuineFile = join(work, "telemetry.bin")
        writeFileSync(genuineFile, await s.sign(BODY))
        boot = s.position().boot
    })

    it("GP-TM-41: genuine telemetry exits 0 with device id, boot, seq, time and body", async () => {
        const res = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile,
            "--device", DEVICE, "--after", `${boot - 1}:7`, "--json"])

        expect(res.code).toBe(0)
        expect(res.json).toEqual({
            ok: true, genuine: true, kind: "telemetry", deviceId: DEVICE, boot, seq: 1, time: WALL,
            body: JSON.parse(BODY.toString()),
        })
        const text = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile])
        expect(text.code).toBe(0)
        expect(text.stdout).toContain(`genuine: ${DEVICE} boot ${boot} seq 1, time ${WALL}`)
    })

    it("GP-TM-41: altered, foreign-key and replayed telemetry exits 1 naming the check", async () => {
        const altered = join(work, "altered.bin")
        const bytes = (await signer(board).sign(BODY))
        bytes[bytes.length - 70] ^= 0x01
        writeFileSync(altered, bytes)
        const otherPem = join(work, "other.pem")
        writeFileSync(otherPem, publicKeyPem(otherPub))

        const changed = await runCli(["telemetry", "verify", altered, "--device-pub", pemFile, "--json"])
        const foreign = await runCli(["telemetry", "verify", genuineFile, "--device-pub", otherPem, "--json"])
        const replayed = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile,
            "--after", `${boot}:1`, "--json"])
        const older = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile,
            "--after", `${boot}:2`, "--json"])
        const device = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile,
            "--device", "dev-other", "--json"])

        for (const [res, check] of [[changed, "signature"], [foreign, "signature"],
            [replayed, "replayed"], [older, "order"], [device, "device"]] as const) {
            expect(res.code).toBe(1)
            expect(res.json).toMatchObject({ ok: false, genuine: false, check })
        }
        expect(replayed.stderr).toContain("replayed")
    })

    it("GP-TM-41: an unreadable envelope, key or flag exits 2", async () => {
        const truncated = join(work, "truncated.bin")
        writeFileSync(truncated, Buffer.from("BWTM\x01"))

        const short = await runCli(["telemetry", "verify", truncated, "--device-pub", pemFile, "--json"])
        const missing = await runCli(["telemetry", "verify", join(work, "nope.bin"), "--device-pub",
            pemFile, "--json"])
        const noKey = await runCli(["telemetry", "verify", genuineFile, "--json"])
        const badAfter = await runCli(["telemetry", "verify", genuineFile, "--device-pub", pemFile,
            "--after", "3", "--json"])
        const badKey = await runCli(["telemetry", "verify", genuineFile, "--device-pub", genuineFile,
            "--json"])

        for (const res of [short, missing, noKey, badAfter, badKey]) {
            expect(res.code).toBe(2)
            expect(res.json.ok).toBe(false)
        }
        expect(short.json.error).toContain("unreadable telemetry")
    })
})
