/**
 * Property-based fuzzing of every decoder of privacy requests and of the stored privacy
 * state (src/privacy/requests.ts, consent.ts, held.ts, json.ts, src/prefs.ts; GP-TM-14,
 * GP-TM-54): on any input they return a value or fail with their typed error, never with
 * anything else, and a request nobody signed never changes a flash byte.
 */

import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { PARTITION_PREFS, PrefsStore } from "../../src/prefs"
import { decodeConsents } from "../../src/privacy/consent"
import { decodeHeld, parseUintText, uintText } from "../../src/privacy/held"
import { DEFAULT_INVENTORY } from "../../src/privacy/inventory"
import { jsonText } from "../../src/privacy/json"
import {
    RequestError,
    decodeConsoleLine,
    decodeOperatorBody,
    decodeSignedRequest,
    parseDecimal,
} from "../../src/privacy/requests"
import { handleConsoleLine, handleOperatorRequest } from "../../src/privacy/rights"
import { cleanupTestBoards } from "../../sim/testing"
import { freshRig, populate, rightsFor, signedEnvelope } from "./helpers"

afterAll(() => cleanupTestBoards())

const RUNS = 300

function onlyTyped(decode: () => unknown): void {
    try {
        decode()
    } catch (e) {
        expect(e).toBeInstanceOf(RequestError)
    }
}

/** Request-shaped JSON objects: the right keys with values of any type, plus strays. */
const requestLike = fc.record(
    {
        v: fc.oneof(fc.constant(1), fc.jsonValue()),
        device: fc.oneof(fc.constant("dev-privacy01"), fc.string()),
        id: fc.oneof(fc.constant("req-1"), fc.string()),
        seq: fc.oneof(fc.nat().map(String), fc.jsonValue()),
        expires: fc.oneof(fc.nat().map(String), fc.jsonValue()),
        right: fc.oneof(
            fc.constantFrom("info", "export", "erase", "rectify", "restrict", "consent"),
            fc.string()
        ),
        args: fc.oneof(
            fc.record(
                {
                    category: fc.oneof(fc.constantFrom("telemetry", "preferences"), fc.string()),
                    grant: fc.jsonValue(),
                    on: fc.jsonValue(),
                    field: fc.oneof(fc.constant("brightness"), fc.string()),
                    value: fc.jsonValue(),
                },
                { requiredKeys: [] }
            ),
            fc.jsonValue()
        ),
        extra: fc.jsonValue(),
    },
    { requiredKeys: [] }
)

describe("privacy decoders under fuzzing", () => {
    it("GP-TM-14: decodeSignedRequest fails only with RequestError on any bytes", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
                onlyTyped(() => decodeSignedRequest(Buffer.from(bytes)))
            }),
            { numRuns: RUNS }
        )
    })

    it("GP-TM-14: decodeSignedRequest on envelope-shaped JSON", () => {
        const envelope = fc.record(
            {
                v: fc.oneof(fc.constant(1), fc.jsonValue()),
                body: fc.oneof(fc.string(), fc.jsonValue()),
                key: fc.oneof(fc.stringMatching(/^[0-9a-f]{130}$/), fc.string()),
                sig: fc.oneof(fc.stringMatching(/^[0-9a-f]{128}$/), fc.string()),
            },
            { requiredKeys: [] }
        )
        fc.assert(
            fc.property(envelope, (obj) => {
                onlyTyped(() => decodeSignedRequest(Buffer.from(JSON.stringify(obj))))
            }),
            { numRuns: RUNS }
        )
    })

    it("GP-TM-14: decodeOperatorBody fails only with RequestError on bytes and JSON", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 400 }), requestLike, (bytes, obj) => {
                onlyTyped(() => decodeOperatorBody(Buffer.from(bytes)))
                onlyTyped(() => decodeOperatorBody(Buffer.from(JSON.stringify(obj))))
            }),
            { numRuns: RUNS }
        )
    })

    it("GP-TM-14: decodeConsoleLine fails only with RequestError on any text", () => {
        const words = fc.array(
            fc.oneof(
                fc.constantFrom("privacy", "consent", "set", "erase", "grant", "on", "telemetry"),
                fc.string({ maxLength: 12 })
            ),
            { maxLength: 7 }
        )
        fc.assert(
            fc.property(fc.string({ maxLength: 300 }), words, (line, parts) => {
                onlyTyped(() => decodeConsoleLine(line))
                onlyTyped(() => decodeConsoleLine(parts.join(" ")))
            }),
            { numRuns: RUNS }
        )
    })

    it("GP-TM-14: stored consent and held-item text never throws nor adds fields", () => {
        const stored = fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)))
        fc.assert(
            fc.property(stored, (text) => {
                for (const r of decodeConsents(text)) expect(typeof r.granted).toBe("boolean")
                for (const c of DEFAULT_INVENTORY.filter((x) => x.fields.length > 0))
                    for (const item of decodeHeld(c, text))
                        for (const name of Object.keys(item.fields))
                            expect(c.fields.map((f) => f.name)).toContain(name)
            }),
            { numRuns: RUNS }
        )
    })

    it("jsonText reads back as the value it wrote, non-ASCII text included", () => {
        fc.assert(
            fc.property(fc.jsonValue(), (value) => {
                const text = jsonText(value)
                expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)))
            }),
            { numRuns: RUNS }
        )
    })

    it("uintText and parseUintText round-trip 32-bit counts; parseDecimal reads decimals", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 0, max: 0xffffffff }),
                fc.integer({ min: -999999, max: 999999 }),
                fc.integer({ min: 0, max: 3 }),
                (n, whole, places) => {
                    expect(parseUintText(uintText(n))).toBe(n)
                    const text = (whole / 10 ** places).toFixed(places)
                    expect(parseDecimal(text)).toBeCloseTo(Number(text), 9)
                }
            ),
            { numRuns: RUNS }
        )
    })
})

describe("privacy handlers under fuzzing", () => {
    it("GP-TM-14: no unsigned or stranger-signed payload changes a flash byte", async () => {
        const rig = await populate(await freshRig())
        const deps = rightsFor(rig, { owner: false })
        const ops = rig.board.flash.opCount
        const before = rig.prefs.snapshot()

        await fc.assert(
            fc.asyncProperty(
                fc.oneof(
                    fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
                    requestLike.map((o) => signedEnvelope(JSON.stringify(o), Buffer.alloc(32, 7)))
                ),
                fc.string({ maxLength: 80 }),
                async (payload, line) => {
                    const reply = await handleOperatorRequest(deps, payload)
                    expect(reply.ok).toBe(false)
                    const typed = await handleConsoleLine(deps, "privacy " + line)
                    expect(typed.error).toBe("refused")
                }
            ),
            { numRuns: 60 }
        )

        expect(rig.board.flash.opCount).toBe(ops)
        expect(rig.prefs.snapshot()).toEqual(before)
    })

    it("GP-TM-14: operator-signed request-like bodies are handled without throwing", async () => {
        const rig = await populate(await freshRig())
        const deps = rightsFor(rig, { owner: false })
        let seq = 1

        await fc.assert(
            fc.asyncProperty(requestLike, async (obj) => {
                const body = { ...obj, seq: String(seq++) }
                const payload = signedEnvelope(JSON.stringify(body))
                const reply = await handleOperatorRequest(deps, payload)
                expect(["", "refused", "invalid", "failed"]).toContain(reply.error)
            }),
            { numRuns: 40 }
        )
    })

    it("GP-TM-20: the prefs store opens on any partition content", async () => {
        const rig = await freshRig()
        const part = rig.board.flash.partition(PARTITION_PREFS)

        const noise = fc.uint8Array({ minLength: 1, maxLength: 64 })
        await fc.assert(
            fc.asyncProperty(noise, fc.nat(part.size - 64), async (bytes, at) => {
                const image = Buffer.alloc(part.size, 0xff)
                Buffer.from(bytes).copy(image, at)
                await rig.board.debugFlash(PARTITION_PREFS, image)
                const prefs = await PrefsStore.open(part, rig.board.crypto)
                expect(prefs.keys()).toEqual([])
            }),
            { numRuns: 40 }
        )
    })
})
