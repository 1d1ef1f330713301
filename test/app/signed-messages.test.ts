/**
 * Signed device-to-fleet messages beyond health telemetry (src/app.ts publish,
 * src/app-telemetry.ts SIGNED_TOPICS, src/telemetry.ts; GP-TM-41): the owner's readings on
 * bulwark/<id>/data/telemetry and the replies on bulwark/<id>/privacy/reply travel in the
 * telemetry envelope, signed by the identity key under a label of their own, so that no
 * envelope verifies as another kind; `bulwark telemetry verify --kind` checks each offline.
 */

import { writeFileSync } from "node:fs"
import { join } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { cleanupTestBoards, makeTestBoard, testProfileJson } from "../../sim/testing"
import { topicLabel, topicPayload } from "../../src/app-telemetry"
import {
    DATA_TELEMETRY_LABEL,
    ENVELOPE_LABELS,
    OTA_STATUS_LABEL,
    PRIVACY_REPLY_LABEL,
    TELEMETRY_LABEL,
    TELEMETRY_MAX_BODY,
    TelemetryError,
    TelemetrySigner,
    decodeTelemetry,
} from "../../src/telemetry"
import { createCa } from "../../tools/ca"
import { verifyTelemetryBytes } from "../../tools/telemetry"
import { runCli } from "../helpers/cli"
import { operatorPublic, requestBody, signedEnvelope } from "../privacy/helpers"
import { removeTempDirs, tempDir } from "../transport/fixtures"
import { advance, measuredBoot, powerOff, powerOn, provisionedBoard, RunningApp } from "./harness"

const MEASURED = measuredBoot("1.0.0", 1)
const KINDS: [string, string][] = [
    ["telemetry", TELEMETRY_LABEL],
    ["ota-status", OTA_STATUS_LABEL],
    ["data-telemetry", DATA_TELEMETRY_LABEL],
    ["privacy-reply", PRIVACY_REPLY_LABEL],
]

let caDir: string

beforeAll(async () => {
    caDir = join(tempDir("bulwark-signed-ca-"), "ca")
    await createCa(caDir, "Signed messages fleet")
})

afterAll(() => {
    cleanupTestBoards()
    removeTempDirs()
})

const security = { overrides: [], operatorKeys: [operatorPublic.toString("hex")] }
const readings = async () => ({ temperature: 21.5, humidity: 40 })

/** A provisioned device running the app with readings, consent granted by a signed request. */
async function consentingApp(): Promise<RunningApp> {
    const profile = testProfileJson({ profile: { security } })
    const { dir } = await provisionedBoard(caDir, profile, 1)
    const r = await powerOn(dir, MEASURED, { telemetryMs: 100, readings })
    const body = requestBody({
        device: r.id, seq: 1, expires: 1_800_003_600, right: "consent",
        args: { category: "telemetry", grant: true },
    })
    r.mqtt().inject(`bulwark/${r.id}/privacy/request`, signedEnvelope(body))
    await advance(r, 1000)
    return r
}

function sentOn(r: RunningApp, suffix: string): Buffer[] {
    return r.mqtt().delivered.filter((d) => d.topic === `bulwark/${r.id}/${suffix}`).map((d) => d.payload)
}

async function check(p: Promise<unknown>): Promise<string> {
    try {
        await p
    } catch (err) {
        if (err instanceof TelemetryError) return err.check
        throw err
    }
    return "accepted"
}

describe("signed owner readings and privacy replies in the running app", () => {
    it("GP-TM-41: the owner's readings on data/telemetry are signed by the identity key and verify offline", async () => {
        const r = await consentingApp()
        const key = await r.board.secureElement.publicKey(SE_SLOT_IDENTITY)
        const data = sentOn(r, "data/telemetry")
        const health = sentOn(r, "telemetry")
        const maxPayload = r.board.profile.transport.maxPayload
        await powerOff(r)

        expect(data.length).toBeGreaterThan(0)
        const seqs: number[] = []
        for (const payload of data) {
            const m = await verifyTelemetryBytes(key, payload,
                { deviceId: r.id, after: null, label: DATA_TELEMETRY_LABEL })
            expect(JSON.parse(m.body.toString()).d).toEqual({ temperature: 21.5, humidity: 40 })
            seqs.push(m.seq)
            expect(payload.length).toBeLessThanOrEqual(maxPayload)
        }
        // Nothing of the owner's goes out bare, and it shares the one (boot, seq) order.
        for (const payload of data) expect(payload.subarray(0, 4).toString()).toBe("BWTM")
        const healthSeqs = health.map((p) => decodeTelemetry(p).message.seq)
        expect(seqs.filter((s) => healthSeqs.includes(s))).toEqual([])

        const file = join(r.dir, "..", "reading.bin")
        writeFileSync(file, data[0])
        const pem = join(r.dir, "..", "device.pem")
        expect((await runCli(["audit", "device-pub", "--dir", r.dir, "--out", pem])).code).toBe(0)
        const res = await runCli(["telemetry", "verify", file, "--device-pub", pem,
            "--kind", "data-telemetry", "--device", r.id, "--json"])
        expect(res.code).toBe(0)
        expect(res.json).toMatchObject({ ok: true, genuine: true, kind: "data-telemetry", deviceId: r.id })
    })

    it("GP-TM-41: a privacy reply is signed and verifies as a privacy reply only", async () => {
        const r = await consentingApp()
        const key = await r.board.secureElement.publicKey(SE_SLOT_IDENTITY)
        const body = requestBody({ device: r.id, id: "req-x", seq: 2, expires: 1_800_003_600,
            right: "export" })
        r.mqtt().inject(`bulwark/${r.id}/privacy/request`, signedEnvelope(body))
        await advance(r, 500)
        const replies = sentOn(r, "privacy/reply")
        await powerOff(r)

        expect(replies).toHaveLength(2)
        const expect_ = { deviceId: r.id, after: null, label: PRIVACY_REPLY_LABEL }
        const consent = JSON.parse((await verifyTelemetryBytes(key, replies[0], expect_)).body.toString())
        const exported = JSON.parse((await verifyTelemetryBytes(key, replies[1], expect_)).body.toString())
        expect(consent).toMatchObject({ v: 1, right: "consent", ok: true })
        expect(exported).toMatchObject({ v: 1, id: "req-x", right: "export", ok: true })
        expect(exported.document).not.toBeNull()
        expect(replies[1].length).toBeGreaterThan(TELEMETRY_MAX_BODY)
        for (const label of [TELEMETRY_LABEL, OTA_STATUS_LABEL, DATA_TELEMETRY_LABEL]) {
            const small = verifyTelemetryBytes(key, replies[0], { deviceId: r.id, after: null, label })
            expect(await check(small)).toBe("signature")
            // The export's body is over the health and status kinds' 2048 bytes: refused
            // as "format" there, and by its signature as the owner's readings.
            const big = verifyTelemetryBytes(key, replies[1], { deviceId: r.id, after: null, label })
            expect(await check(big)).toBe(label === DATA_TELEMETRY_LABEL ? "signature" : "format")
        }
    })
})

describe("one envelope, one label per kind", () => {
    it("GP-TM-41: a data-telemetry envelope does not verify as telemetry, status or privacy reply, and vice versa", async () => {
        const board = await makeTestBoard()
        const publicKey = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
        const signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock, "dev-kinds")
        // The same body under each label: only the label tells the kinds apart.
        const body = Buffer.from('{"v":1,"ok":true}')
        const envelopes = new Map<string, Buffer>()
        for (const [, label] of KINDS) envelopes.set(label, await signer.sign(body, label))
        expect(new Set(ENVELOPE_LABELS)).toEqual(new Set(KINDS.map((k) => k[1])))

        for (const [, signedAs] of KINDS) {
            for (const [, verifiedAs] of KINDS) {
                const p = verifyTelemetryBytes(publicKey, envelopes.get(signedAs)!,
                    { deviceId: "dev-kinds", after: null, label: verifiedAs })
                expect([signedAs, verifiedAs, await check(p)])
                    .toEqual([signedAs, verifiedAs, signedAs === verifiedAs ? "accepted" : "signature"])
            }
        }
        board.close()
    })

    it("GP-TM-41: the app signs each device-to-fleet topic under its own label and leaves self-signed ones alone", () => {
        expect(topicLabel("telemetry")).toBe(TELEMETRY_LABEL)
        expect(topicLabel("ota/status")).toBe(OTA_STATUS_LABEL)
        expect(topicLabel("data/telemetry")).toBe(DATA_TELEMETRY_LABEL)
        expect(topicLabel("privacy/reply")).toBe(PRIVACY_REPLY_LABEL)
        // Signed in their own formats (attestation report, audit export), or answered plain.
        for (const s of ["attest/report", "audit/export/1", "audit/export-result", "cert/status"])
            expect(topicLabel(s)).toBeNull()
    })

    it("GP-TM-41: a privacy reply above the health body limit is signed whole; one over maxPayload, or one the element cannot sign, is not sent", async () => {
        const board = await makeTestBoard()
        const publicKey = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
        const signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock, "dev-big")
        const big = Buffer.from(JSON.stringify({ v: 1, document: { pad: "x".repeat(6000) } }))
        expect(big.length).toBeGreaterThan(TELEMETRY_MAX_BODY)
        const lines: string[] = []

        const sent = await topicPayload(signer, "privacy/reply", big, 16384, (l) => lines.push(l))
        expect(sent).not.toBeNull()
        const m = await verifyTelemetryBytes(publicKey, sent!,
            { deviceId: "dev-big", after: null, label: PRIVACY_REPLY_LABEL })
        expect(m.body.equals(big)).toBe(true)
        expect(await topicPayload(signer, "privacy/reply", big, big.length + 40, (l) => lines.push(l)))
            .toBeNull()
        // Other topics go as they are.
        expect((await topicPayload(signer, "attest/report", big, 16384))!.equals(big)).toBe(true)
        board.close()

        const fresh = await makeTestBoard()
        const noKey = new TelemetrySigner(fresh.secureElement, fresh.crypto, fresh.clock, "dev-nokey")
        expect(await topicPayload(noKey, "data/telemetry", Buffer.from("{}"), 16384,
            (l) => lines.push(l))).toBeNull()
        expect(lines).toEqual([
            "privacy reply larger than transport.maxPayload: not sent",
            "owner reading not signed (identity): not sent",
        ])
        fresh.close()
    })
})

describe("bulwark telemetry verify --kind", () => {
    it("GP-TM-41: --kind verifies the matching kind (exit 0), refuses another kind (exit 1) and an unknown kind (exit 2)", async () => {
        const board = await makeTestBoard()
        await board.secureElement.generateKey(SE_SLOT_IDENTITY)
        const signer = new TelemetrySigner(board.secureElement, board.crypto, board.clock, "dev-cli")
        const dir = tempDir("bulwark-kind-")
        const files = new Map<string, string>()
        for (const [kind, label] of KINDS) {
            const file = join(dir, kind + ".bin")
            writeFileSync(file, await signer.sign(Buffer.from('{"v":1}'), label))
            files.set(kind, file)
        }
        board.close()
        const pem = join(dir, "device.pem")
        const pubRes = await runCli(["audit", "device-pub", "--dir", board.dir, "--out", pem])
        expect(pubRes.code).toBe(0)

        for (const [kind] of KINDS) {
            const ok = await runCli(["telemetry", "verify", files.get(kind)!, "--device-pub", pem,
                "--kind", kind, "--json"])
            expect([kind, ok.code]).toEqual([kind, 0])
            expect(ok.json).toMatchObject({ ok: true, genuine: true, kind, deviceId: "dev-cli" })
        }
        const asData = await runCli(["telemetry", "verify", files.get("privacy-reply")!,
            "--device-pub", pem, "--kind", "data-telemetry", "--json"])
        expect(asData.code).toBe(1)
        expect(asData.json).toMatchObject({ ok: false, genuine: false, kind: "data-telemetry",
            check: "signature" })
        // Without --kind: telemetry, as before; a data-telemetry envelope is refused.
        const byDefault = await runCli(["telemetry", "verify", files.get("data-telemetry")!,
            "--device-pub", pem, "--json"])
        expect(byDefault.code).toBe(1)
        expect(byDefault.json).toMatchObject({ kind: "telemetry", check: "signature" })
        const health = await runCli(["telemetry", "verify", files.get("telemetry")!,
            "--device-pub", pem, "--json"])
        expect(health.code).toBe(0)
        const unknown = await runCli(["telemetry", "verify", files.get("telemetry")!,
            "--device-pub", pem, "--kind", "cert-status", "--json"])
        expect(unknown.code).toBe(2)
        const unreadable = join(dir, "junk.bin")
        writeFileSync(unreadable, Buffer.from("not an envelope"))
        const junk = await runCli(["telemetry", "verify", unreadable, "--device-pub", pem,
            "--kind", "privacy-reply", "--json"])
        expect(junk.code).toBe(2)
    })
})
