/**
 * The update commands as an operator runs them: `bulwark ota publish` (exit 0 only when
 * every targeted device confirmed, 1 when one refused, 2 for bad usage) and `bulwark sim
 * run` (runs a device until SIGTERM, then exits 0). GP-TM-18, GP-TM-19.
 */

import { spawn } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { RunningBroker, startBroker } from "../../sim/broker"
import { SimBoard } from "../../sim/board"
import { DeviceHandle, startDevice } from "../../sim/runner"
import { cleanupTestBoards, testProfileJson } from "../../sim/testing"
import { buildAppBundle } from "../../tools/app-build"
import { issueOperatorCertificate } from "../../tools/ca"
import { writeReleaseKeyFiles } from "../../tools/keyfile"
import { provision, readRegistry, writeRegistry } from "../../tools/provision"
import { defaultServerName, parseBroker } from "../../tools/commands/ota"
import { parseOffer } from "../../ota/offer"
import { BROKER_UPDATE, keyA, makeImage, watchTopic } from "./helpers"
import { CliResult, runCli } from "../helpers/cli"
import { Fleet, makeFleet, removeTempDirs, tempDir } from "../transport/fixtures"

const ROOT = resolve(__dirname, "../..")
let work: string
let fleet: Fleet
let caDir: string
let broker: RunningBroker
let app: Buffer
const devices: DeviceHandle[] = []

const PROFILE = testProfileJson({
    slotSize: 262144,
    profile: { update: BROKER_UPDATE },
})

beforeAll(async () => {
    work = tempDir("bulwark-ota-cli-")
    app = readFileSync((await buildAppBundle(undefined, join(work, "app.js"))).path)
    fleet = await makeFleet("CLI fleet")
    caDir = fleet.caDir
    await issueOperatorCertificate(fleet.ca, "ops", join(work, "operator"))
    writeReleaseKeyFiles(join(work, "keys"), keyA)
    broker = await startBroker({ caDir, port: 0 })
})

afterAll(async () => {
    for (const d of devices) await d.stop()
    await broker?.close()
    cleanupTestBoards()
    removeTempDirs()
})

async function newDeviceDir(): Promise<{ dir: string; id: string }> {
    const dir = join(tempDir("bulwark-ota-cli-dev-"), "dev")
    const board = await SimBoard.create(dir, { profile: PROFILE, trust: [keyA.anchor], counter: 1 })
    await board.debugFlash("slot-a", await makeImage({ version: "1.0.0", counter: 1, payload: app }))
    board.close()
    const { deviceId } = await provision({ devDir: dir, caDir, iterations: 1000 })
    return { dir, id: deviceId }
}

/** Runs the CLI in-process, capturing stdout. */
async function cli(argv: string[]): Promise<{ code: number; out: string }> {
    const result: CliResult = await runCli(argv)
    return { code: result.code, out: result.stdout }
}

function publishArgs(image: string, ids: string[]): string[] {
    return [
        "ota",
        "publish",
        "--broker",
        "127.0.0.1:" + broker.port,
        "--ca",
        caDir,
        "--operator",
        join(work, "operator"),
        "--image",
        image,
        "--key",
        join(work, "keys", "release.key"),
        "--devices",
        ids.join(","),
        "--timeout",
        "60",
        "--json",
    ]
}

describe("bulwark ota publish", () => {
    it("GP-TM-18: exits 0 when every targeted device confirmed the new version", async () => {
        const { dir, id } = await newDeviceDir()
        const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
        devices.push(device)
        await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
        const image = join(work, "v2.img")
        writeFileSync(image, await makeImage({ version: "2.0.0", counter: 2, payload: app }))

        const { code, out } = await cli(publishArgs(image, [id]))

        expect(code).toBe(0)
        expect(JSON.parse(out)).toMatchObject({
            ok: true,
            rejectedStatuses: 0,
            devices: [{ deviceId: id, ok: true, state: "confirmed", running: "2.0.0",
                statusAuth: "signed", rejectedStatuses: 0 }],
        })
    })

    it("GP-TM-41: a device the registry holds no key for (an old registry) exits 2 naming it; --accept-unsigned-status follows it unverified", async () => {
        const { dir, id } = await newDeviceDir()
        const registry = readRegistry(caDir)
        delete registry.devices.find((d) => d.id === id)!.publicKey
        writeRegistry(caDir, registry)
        const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
        devices.push(device)
        await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
        const image = join(work, "v2-keyless.img")
        writeFileSync(image, await makeImage({ version: "2.0.0", counter: 2, payload: app }))

        const refused = await runCli(publishArgs(image, [id]))
        expect(refused.code).toBe(2)
        expect(refused.stderr).toContain(id)
        expect(refused.stderr).toContain("--accept-unsigned-status")

        const { code, out } = await cli([...publishArgs(image, [id]), "--accept-unsigned-status"])
        expect(code).toBe(0)
        expect(JSON.parse(out).devices[0]).toMatchObject({ ok: true, state: "confirmed", statusAuth: "unsigned" })
    })

    it("GP-TM-05: exits 1 and names the check when a device refuses the update", async () => {
        const { dir, id } = await newDeviceDir()
        const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
        devices.push(device)
        await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
        const image = join(work, "old.img")
        writeFileSync(image, await makeImage({ version: "0.9.0", counter: 1, payload: app }))

        const { code, out } = await cli(publishArgs(image, [id]))

        expect(code).toBe(1)
        expect(JSON.parse(out).devices[0]).toMatchObject({ ok: false, state: "refused", check: "downgrade" })
    })

    it("GP-TM-18: --chunk-table signs a format 2 offer whose table the device fetches, then it confirms",
        async () => {
            const { dir, id } = await newDeviceDir()
            const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
            devices.push(device)
            await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
            const image = join(work, "v2-table.img")
            writeFileSync(image, await makeImage({ version: "2.0.0", counter: 2, payload: app }))
            const watcher = await watchTopic(fleet.ca, broker.port, `bulwark/${id}/ota/#`)

            const { code, out } = await cli([...publishArgs(image, [id]), "--chunk-table", "2048"])
            const seen = await watcher.stop()
            const offer = parseOffer(seen.find((m) => m.topic.endsWith("/offer"))!.payload).offer
            const asked = seen.filter((m) => m.topic.endsWith("/request"))
                .map((m) => m.payload.subarray(0, 4).toString())

            expect(code).toBe(0)
            expect(JSON.parse(out)).toMatchObject({ ok: true, offerFormat: 2 })
            expect(offer.chunkTable?.chunkSize).toBe(2048)
            expect(asked[0]).toBe("BWTQ")
        })

    it("--chunk-table out of range, or too small for the image's table, exits 2", async () => {
        const image = join(work, "v2-bounds.img")
        writeFileSync(image, await makeImage({ version: "2.0.0", counter: 2, payload: app }))
        const run = (size: string) => cli([...publishArgs(image, ["dev-x"]), "--chunk-table", size])

        const results = []
        for (const size of ["0", "65537", "16", "x"]) results.push(await run(size))

        expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2])
        expect(JSON.parse(results[2].out).error).toMatch(/a table holds at most 256/)
    })

    it("exits 2 for bad usage and unreadable input", async () => {
        const args = publishArgs(join(work, "missing.img"), ["dev-x"])

        expect((await cli(args)).code).toBe(2)
        expect((await cli(["ota", "publish", "--broker", "nowhere"])).code).toBe(2)
        expect(() => parseBroker("host:99999")).toThrow()
        expect(parseBroker("[::1]:8883")).toEqual({ host: "::1", port: 8883 })
        expect(defaultServerName("127.0.0.1")).toBe("localhost")
        expect(defaultServerName("broker.example")).toBe("broker.example")
    })
})

describe("bulwark sim run", () => {
    it("runs the device until SIGTERM, then stops cleanly with exit 0", async () => {
        const { dir } = await newDeviceDir()
        const child = spawn(
            process.execPath,
            [join(ROOT, "bin/bulwark.js"), "sim", "run", "--dir", dir, "--broker", "127.0.0.1:" + broker.port, "--json"],
            { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] }
        )
        let out = ""
        const firstBoot = new Promise<void>((done) =>
            child.stdout.on("data", (d: Buffer) => {
                out += d.toString()
                if (out.includes('"event":"boot"')) done()
            })
        )
        const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))

        await firstBoot
        child.kill("SIGTERM")

        expect(await exited).toBe(0)
        const boot = JSON.parse(out.split("\n")[0])
        expect(boot).toMatchObject({ event: "boot", boot: { version: "1.0.0", booted: "a" } })
    })
})
