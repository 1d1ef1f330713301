/**
 * The sim runs what it verified (DESIGN.md section 6): the boot stub hands exactly the
 * verified payload to the loader, a different signed image really runs different code, and
 * a tampered image never executes (GP-TM-04).
 */

import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { loadAppBundle, LoaderError } from "../../sim/loader"
import { cleanupTestBoards } from "../../sim/testing"
import { buildAppBundle } from "../../tools/app-build"
import { boot, flashSlot, newBoard, signedImage } from "./helpers"

afterAll(cleanupTestBoards)

/** Room for the app bundle (about 110 KiB) in each slot. */
const APP_SLOT = 512 * 1024
const g = globalThis as Record<string, unknown>
let appBundle: Buffer
let variantBundle: Buffer

beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-app-"))
    const app = await buildAppBundle(undefined, join(dir, "app.js"))
    const variant = await buildAppBundle(
        resolve(__dirname, "../fixtures/app-variant.ts"),
        join(dir, "variant.js")
    )
    appBundle = readFileSync(app.path)
    variantBundle = readFileSync(variant.path)
})

describe("sim loader", () => {
    it("GP-TM-04: runs the app bundle the boot stub verified", async () => {
        const board = await newBoard({ counter: 1, slotSize: APP_SLOT })
        await flashSlot(board, "a", await signedImage("1.0.0", 1, { payload: appBundle }))

        const decision = await boot(board, true)
        const app = loadAppBundle(decision.payload!)
        const report = await app.describeApp({ board, profile: board.profile, measured: decision.measured! })

        expect(decision.payload!.equals(appBundle)).toBe(true)
        expect(report).toMatchObject({ app: "bulwark-app", version: "1.0.0", slot: "a" })
        expect(report.selfTest.ok).toBe(true)
    })

    it("GP-TM-04: a different signed image really runs different code", async () => {
        const board = await newBoard({ counter: 1, slotSize: APP_SLOT })
        await flashSlot(board, "a", await signedImage("1.1.0", 1, { payload: variantBundle }))
        const before = (g.__bulwarkVariantRan as number) ?? 0

        const decision = await boot(board, true)
        const app = loadAppBundle(decision.payload!)
        const report = await app.describeApp({ board, profile: board.profile, measured: decision.measured! })

        expect(report).toMatchObject({ app: "variant-app", version: "1.1.0" })
        expect(g.__bulwarkVariantRan).toBe(before + 1)
    })

    it("GP-TM-04: a tampered image never executes", async () => {
        const board = await newBoard({ counter: 1, slotSize: APP_SLOT })
        const image = await signedImage("1.1.0", 1, { payload: variantBundle })
        const at = image.indexOf(Buffer.from("variant-app"))
        image[at] = "V".charCodeAt(0)
        await flashSlot(board, "a", image)
        const before = g.__bulwarkVariantRan

        const decision = await boot(board, true)

        expect(decision.booted).toBeNull()
        expect(decision.payload).toBeNull()
        expect(decision.refused[0]).toMatchObject({ slot: "a", check: "digest" })
        expect(g.__bulwarkVariantRan).toBe(before)
    })

    it("what runs is the bytes that were hashed, even if the slot changes afterwards", async () => {
        const board = await newBoard({ counter: 1, slotSize: APP_SLOT })
        await flashSlot(board, "a", await signedImage("1.0.0", 1, { payload: appBundle }))

        const decision = await boot(board, true)
        await flashSlot(board, "a", await signedImage("1.1.0", 1, { payload: variantBundle }))
        const report = await loadAppBundle(decision.payload!).describeApp({
            board,
            profile: board.profile,
            measured: decision.measured!,
        })

        expect(report.app).toBe("bulwark-app")
    })

    it("refuses a payload that is not an app bundle of the sim's ABI", () => {
        expect(() => loadAppBundle(Buffer.from("module.exports = { APP_ABI: 99 }"))).toThrow(LoaderError)
        expect(() => loadAppBundle(Buffer.from("this is not javascript ("))).toThrow(LoaderError)
    })
})
