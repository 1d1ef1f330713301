/**
 * `bulwark broker` as a process: it prints where it listens, speaks TLS only on that port,
 * stops cleanly on SIGTERM, and refuses bad usage with exit 2 (GP-TM-39, GP-TM-44).
 */

import { spawn } from "node:child_process"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Fleet, makeFleet, plaintextConnect, removeTempDirs } from "./fixtures"

const BIN = join(__dirname, "..", "..", "bin", "bulwark.js")
let fleet: Fleet

beforeAll(async () => {
    fleet = await makeFleet()
})

afterAll(() => removeTempDirs())

function exitOf(child: ReturnType<typeof spawn>): Promise<number | null> {
    return new Promise((resolve) => child.once("exit", (code) => resolve(code)))
}

describe("bulwark broker (GP-TM-39)", () => {
    it("GP-TM-39/50: listens on loopback with TLS only and stops on SIGTERM", async () => {
        const argv = [BIN, "broker", "--ca", fleet.caDir, "--port", "0", "--json", "--quiet"]
        const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] })
        const exited = exitOf(child)
        const line = await new Promise<string>((resolve) => {
            let out = ""
            child.stdout!.on("data", (c: Buffer) => {
                out += c.toString()
                if (out.includes("\n")) resolve(out.split("\n")[0])
            })
        })
        const started = JSON.parse(line)

        const reply = await plaintextConnect(started.port)
        child.kill("SIGTERM")

        expect(started).toMatchObject({ ok: true, host: "127.0.0.1" })
        expect(reply.length === 0 || reply[0] !== 0x20).toBe(true)
        expect(await exited).toBe(0)
    })

    it("bad usage: a missing --ca or an unreadable CA directory exits 2", async () => {
        const noCa = ["broker", "--port", "0"]
        const badCa = ["broker", "--ca", join(fleet.caDir, "x"), "--port", "0"]

        const missing = exitOf(spawn(process.execPath, [BIN, ...noCa], { stdio: "ignore" }))
        const nowhere = exitOf(spawn(process.execPath, [BIN, ...badCa], { stdio: "ignore" }))

        expect(await missing).toBe(2)
        expect(await nowhere).toBe(2)
    })
})
