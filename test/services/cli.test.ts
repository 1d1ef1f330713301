/**
 * The `bulwark` commands of the security services (GP-TM-55, GP-TM-08, GP-TM-53):
 * `sim console` runs a scripted session and saves an export, `audit verify` accepts the
 * genuine file (exit 0) and names the first bad record of a tampered one (exit 1), and an
 * operator-signed request served by `audit export` verifies too.
 */

import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PassThrough, Writable } from "node:stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runSimConsole } from "../../tools/commands/sim-console"
import { cleanupTestBoards } from "../../sim/testing"
import { runConsole } from "../../src/admin/service"
import { SocketConsole, consoleSocketPath } from "../../sim/console"
import { CliResult, runCli } from "../helpers/cli"
import { OWNER_PASSWORD, SETUP_CODE, consoleBoard, openConsole, smallSectorBoard } from "./support"

const work = mkdtempSync(join(tmpdir(), "bulwark-audit-cli-"))

afterAll(() => {
    cleanupTestBoards()
    rmSync(work, { recursive: true, force: true })
})

function cli(...argv: string[]): Promise<CliResult> {
    return runCli(argv)
}

async function consoleSession(argv: string[], lines: string[]): Promise<string[]> {
    const input = new PassThrough()
    let shown = ""
    const output = new Writable({
        write(chunk, _enc, done) {
            shown += chunk.toString()
            done()
        },
    })
    input.end(lines.map((l) => l + "\n").join(""))
    await runSimConsole(argv, input, output)
    return shown.split("\n")
}

let dir: string
let exportFile: string
let pubFile: string
const operator = generateKeyPairSync("ec", { namedCurve: "P-256" })
const operatorPub = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(operator.publicKey.export({ format: "jwk" }).x!, "base64url"),
    Buffer.from(operator.publicKey.export({ format: "jwk" }).y!, "base64url"),
]).toString("hex")

beforeAll(async () => {
    const { board } = await consoleBoard({ operatorKeys: [operatorPub] })
    dir = board.dir
    board.close()
    exportFile = join(work, "export.bin")
    pubFile = join(work, "device.pem")
})

describe("bulwark sim console and audit verify", () => {
    it("GP-TM-55: a console session saves an export that audit verify accepts", async () => {
        const shown = await consoleSession(
            ["--dir", dir, "--export-to", exportFile],
            ["login", "owner", SETUP_CODE, OWNER_PASSWORD, OWNER_PASSWORD, "audit-export", "logout"]
        )
        const pub = await cli("audit", "device-pub", "--dir", dir, "--out", pubFile)
        const verified = await cli("audit", "verify", exportFile, "--device-pub", pubFile, "--json")

        expect(shown).toContain("owner password set")
        expect(shown.some((l) => l.startsWith("export written to "))).toBe(true)
        expect(pub.code).toBe(0)
        expect(verified.code).toBe(0)
        expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, genuine: true })
    })

    it(
        "GP-TM-55: audit verify exits 1 and names the first bad record of a tampered export",
        async () => {
            const bytes = readFileSync(exportFile)
            const tampered = Buffer.from(bytes)
            tampered[bytes.length - 40] ^= 0x20
            const tamperedFile = exportFile + ".tampered"
            writeFileSync(tamperedFile, tampered)

            const pub = ["--device-pub", pubFile]
            const result = await cli("audit", "verify", tamperedFile, ...pub, "--json")
            const missing = await cli("audit", "verify", exportFile + ".nope", ...pub)

            expect(result.code).toBe(1)
            const json = JSON.parse(result.stdout)
            expect(json.ok).toBe(false)
            expect(json.firstBad).toMatchObject({ problem: "altered" })
            expect(json.firstBad.seq).toBe(json.headSeq)
            expect(missing.code).toBe(2)
        }
    )

    it("GP-TM-55: an operator-signed request served by audit export verifies", async () => {
        const keyFile = join(work, "operator.pem")
        writeFileSync(keyFile, operator.privateKey.export({ format: "pem", type: "pkcs8" }))
        const requestFile = keyFile + ".req"
        const served = keyFile + ".export"

        const request = await cli(
            "audit", "request", "--device", "dev-0123456789ab", "--key", keyFile,
            "--out", requestFile, "--json"
        )
        const exported = await cli(
            "audit", "export", "--dir", dir, "--request", requestFile, "--out", served, "--json"
        )
        const verified = await cli("audit", "verify", served, "--device-pub", pubFile)

        expect(JSON.parse(request.stdout).operatorPublicKey).toBe(operatorPub)
        expect(exported.code).toBe(0)
        expect(verified.code).toBe(0)
        expect(verified.stdout).toMatch(/^genuine: /)
    })

    it("GP-TM-25: attaches to a running device through DEV/console.sock", async () => {
        const { board } = await consoleBoard()
        const session = await openConsole(board)
        const channel = new SocketConsole(consoleSocketPath(board.dir))
        const served = runConsole(channel, session.admin)

        const shown = await consoleSession(["--dir", board.dir], ["login", "root", "toor"])
        await served
        channel.close()

        expect(shown).toContain("bulwark console dev-0123456789ab")
        expect(shown).toContain("login failed")
    })

    it("GP-TM-08: refuses to open the console of a device whose profile keeps it off", async () => {
        const board = await smallSectorBoard(4)
        const off = board.dir
        board.close()

        const run = runSimConsole(["--dir", off], new PassThrough(), new PassThrough())

        await expect(run).rejects.toThrow(/console is off/)
    })
})
