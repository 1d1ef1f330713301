/**
 * Export only on an authenticated request (GP-TM-55) with replies that say nothing more
 * than "refused" (GP-TM-53): an operator-signed request from a listed key is served and
 * audited as log-export; every other request is refused, audited with its reason, and the
 * operator learns only that it was refused.
 */

import { afterAll, describe, expect, it } from "vitest"
import { p256 } from "@noble/curves/nist.js"
import {
    ExportContext,
    encodeRequestBody,
    handleMqttExportRequest,
    requestMessage,
} from "../../src/audit/export"
import { cleanupTestBoards } from "../../sim/testing"
import { signExportRequest } from "../../tools/audit-verify"
import {
    exportContext,
    giveIdentity,
    hostCrypto,
    openAudit,
    smallSectorBoard,
    verify,
} from "./support"

afterAll(() => cleanupTestBoards())

const operatorKey = Buffer.from(p256.utils.randomSecretKey())
const operatorPub = Buffer.from(p256.getPublicKey(operatorKey, false))
const strangerKey = Buffer.from(p256.utils.randomSecretKey())

async function device(wallTime: number | null = 1_800_000_000) {
    const board = await smallSectorBoard(6, { wallTime })
    const pub = await giveIdentity(board)
    const log = await openAudit(board, { epochRecords: 8 })
    await log.append({ event: "boot", actor: "device", outcome: "info", detail: "" })
    const ctx: ExportContext = { ...exportContext(board, log), operatorKeys: [operatorPub] }
    return { board, pub, log, ctx }
}

async function ask(ctx: ExportContext, request: Buffer) {
    const sent: { suffix: string; payload: Buffer }[] = []
    const check = await handleMqttExportRequest(ctx, request, async (suffix, payload) => {
        sent.push({ suffix, payload })
    })
    return { check, sent }
}

describe("operator-signed export requests", () => {
    it("GP-TM-55: serves a listed operator's signed request and audits it", async () => {
        const { pub, log, ctx } = await device()
        const request = signExportRequest(operatorKey, "dev-test", 0, 0).bytes

        const { check, sent } = await ask(ctx, request)
        const pieces = sent.filter((m) => m.suffix.startsWith("audit/export/"))
        const report = await verify(pub, Buffer.concat(pieces.map((m) => m.payload)))
        const events: string[] = []
        await log.forEach(0, async (r) => {
            events.push(`${r.event} ${r.outcome}`)
        })

        expect(check).toBe("ok")
        expect(sent[sent.length - 1].suffix).toBe("audit/export-result")
        expect(JSON.parse(sent[sent.length - 1].payload.toString())).toEqual({
            ok: true,
            pieces: pieces.length,
        })
        expect(report.genuine).toBe(true)
        expect(events).toContain("log-export success")
    })

    it(
        "GP-TM-53: every refused request gets the same bare answer; the log keeps the reason",
        async () => {
            const { log, ctx } = await device()
            const good = signExportRequest(operatorKey, "dev-test", 0, 0).bytes
            const badSig = Buffer.from(good)
            badSig[badSig.length - 5] ^= 1
            const expired = signExportRequest(operatorKey, "dev-test", 0, 1_700_000_000).bytes
            const cases: [string, Buffer][] = [
                ["format", Buffer.from("hello")],
                ["device", signExportRequest(operatorKey, "dev-other", 0, 0).bytes],
                ["operator", signExportRequest(strangerKey, "dev-test", 0, 0).bytes],
                ["signature", badSig],
                ["expired", expired],
            ]
            await ask(ctx, good)

            const replay = await ask(ctx, good)
            const answers = [replay]
            for (const [, bytes] of cases) answers.push(await ask(ctx, bytes))
            const refusals: string[] = []
            await log.forEach(0, async (r) => {
                if (r.event === "log-export" && r.outcome === "refused") refusals.push(r.detail)
            })

            for (const a of answers) {
                expect(a.sent).toHaveLength(1)
                expect(a.sent[0].payload.toString()).toBe('{"ok":false,"error":"refused"}')
            }
            expect(answers.map((a) => a.check)).toEqual(["replayed", ...cases.map((c) => c[0])])
            expect(refusals).toEqual(answers.map((a) => "check=" + a.check))
        }
    )

    it("GP-TM-55: a request signed over other bytes than it carries is refused", async () => {
        const { ctx } = await device()
        const body = encodeRequestBody("dev-test", Buffer.alloc(16, 1), 0, 0, operatorPub)
        const digest = hostCrypto.sha256([requestMessage(body)])
        const sig = Buffer.from(p256.sign(digest, operatorKey, { prehash: false }))
        const tampered = Buffer.concat([body, sig])
        tampered[body.length - 70] ^= 1

        const { check } = await ask(ctx, tampered)

        expect(check).toBe("signature")
    })
})
