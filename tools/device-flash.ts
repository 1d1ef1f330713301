/**
 * `npm run flash -- --board esp32s3 --port /dev/ttyUSB0 --firmware FILE` (docs/device.md):
 * flashes the DeviceScript runtime from a local firmware file with `devs flash`, builds the
 * device bytecode, and with --deploy hands it to the board over USB serial. The runtime file
 * is checked (name, optional SHA-256) before anything touches the board; nothing is ever
 * downloaded in CI, and outside CI only with an explicit --download (GP-TM-05).
 * Exit 0 done, 1 refused (CI download, digest mismatch, failed step), 2 usage.
 */

import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { basename, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { deviceTarget, DeviceTarget } from "../hal/devicescript/capabilities"
import {
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    flag,
    hasFlag,
    parseArgs,
    RefusedError,
    UsageError,
} from "./args"
import { buildDevice, profileBoard } from "./device-build"
import { devsBinary, TOOLS_ROOT } from "./device-common"

export interface FlashOptions {
    board?: string
    port?: string
    firmware?: string
    firmwareSha256?: string
    download: boolean
    deploy: boolean
    dryRun: boolean
}

export interface FlashPlan {
    target: DeviceTarget
    /** SHA-256 of the runtime file, or "" when devs downloads it (outside CI only). */
    firmwareSha256: string
    /** `devs` arguments that flash the runtime. */
    flashArgs: string[]
    /** `devs` arguments that deploy the bytecode, when --deploy. */
    deployArgs: string[] | null
}

/** True when the environment says this is a CI run (the convention most CI systems follow). */
export function inCi(env: NodeJS.ProcessEnv): boolean {
    const value = env.CI
    return value !== undefined && value !== "" && value !== "0" && value !== "false"
}

const BOARDS = "esp32s3, esp32c3, rp2040w"

/**
 * Checks a local runtime image before it is flashed: it exists, its name is one `devs flash`
 * understands (ESP32 images carry their flash offset in the name), and, when the operator
 * gave one, its SHA-256 is the expected one. Returns the SHA-256.
 */
function checkFirmware(file: string, target: DeviceTarget, expected: string | undefined): string {
    if (!existsSync(file)) throw new UsageError(`--firmware ${file} does not exist`)
    if (target.flashFamily === "esp32" && !/-0x[0-9a-f]+\.bin$/.test(basename(file)))
        throw new UsageError("an ESP32 runtime file name must end in -0x<offset>.bin (-0x0.bin)")
    if (target.flashFamily === "rp2040" && !file.endsWith(".uf2"))
        throw new UsageError("an RP2040 runtime file must be a .uf2")
    const actual = createHash("sha256").update(readFileSync(file)).digest("hex")
    if (expected !== undefined && expected.toLowerCase() !== actual)
        throw new RefusedError("runtime firmware digest does not match --firmware-sha256", {
            expected: expected.toLowerCase(),
            actual,
        })
    return actual
}

/**
 * Checks the options and works out what to run, before anything touches a board.
 * UsageError for bad options; RefusedError for a download in CI or a digest mismatch.
 */
export function planFlash(options: FlashOptions, env: NodeJS.ProcessEnv, root: string): FlashPlan {
    const board = options.board ?? profileBoard(root).board
    let target: DeviceTarget
    try {
        target = deviceTarget(board)
    } catch {
        throw new UsageError(`--board ${board} is not a DeviceScript board (${BOARDS})`)
    }
    if (target.flashFamily === "") throw new UsageError(`--board ${board} cannot be flashed`)
    if (target.flashFamily === "rp2040" && options.port !== undefined)
        throw new UsageError("--port is for ESP32 boards; an RP2040 is flashed as a USB drive")

    const flashArgs = ["flash", target.flashFamily, "--board", target.dsBoard]
    if (options.port !== undefined) flashArgs.push("--port", options.port)

    let firmwareSha256 = ""
    if (options.firmware !== undefined) {
        const file = resolve(options.firmware)
        firmwareSha256 = checkFirmware(file, target, options.firmwareSha256)
        flashArgs.push("--file", file)
    } else if (inCi(env)) {
        throw new RefusedError("refusing to download runtime firmware in CI: pass --firmware FILE")
    } else if (!options.download) {
        throw new UsageError("pass --firmware FILE, or --download to let devs fetch the runtime")
    } else if (options.firmwareSha256 !== undefined) {
        throw new UsageError("--firmware-sha256 needs --firmware: a download is not checked first")
    }

    const deployArgs = options.deploy ? ["devtools", "main.ts", "--serial"] : null
    return { target, firmwareSha256, flashArgs, deployArgs }
}

function run(args: string[], cwd: string): Promise<number> {
    return new Promise((done, fail) => {
        const child = spawn(devsBinary(), ["--no-colors", ...args], {
            cwd,
            stdio: "inherit",
            env: { ...process.env, NO_UPDATE_NOTIFIER: "1", GIT_OPTIONAL_LOCKS: "0" },
        })
        child.on("error", fail)
        child.on("close", (code) => done(code ?? 1))
    })
}

/** Runs `devs devtools` until it reports the deployment, then stops it. */
function deploy(args: string[], cwd: string, timeoutMs: number): Promise<string> {
    return new Promise((done, fail) => {
        const child = spawn(devsBinary(), ["--no-colors", ...args], {
            cwd,
            stdio: ["ignore", "pipe", "inherit"],
            env: { ...process.env, NO_UPDATE_NOTIFIER: "1", GIT_OPTIONAL_LOCKS: "0" },
        })
        let status = ""
        let seen = ""
        const stop = setTimeout(() => child.kill("SIGTERM"), timeoutMs)
        child.stdout.on("data", (d: Buffer) => {
            process.stdout.write(d)
            seen += d.toString()
            const m = /deploy status: (.*)\n/.exec(seen)
            if (m && status === "") {
                status = m[1].trim()
                child.kill("SIGTERM")
            }
        })
        child.on("error", fail)
        child.on("close", () => {
            clearTimeout(stop)
            done(status)
        })
    })
}

async function main(argv: string[]): Promise<number> {
    const valued = ["board", "port", "firmware", "firmware-sha256"]
    const args = parseArgs(argv, valued, ["download", "deploy", "dry-run"])
    if (args.positional.length > 0) throw new UsageError("flash takes no positional arguments")
    const options: FlashOptions = {
        board: flag(args, "board"),
        port: flag(args, "port"),
        firmware: flag(args, "firmware"),
        firmwareSha256: flag(args, "firmware-sha256"),
        download: hasFlag(args, "download"),
        deploy: hasFlag(args, "deploy"),
        dryRun: hasFlag(args, "dry-run"),
    }
    const plan = planFlash(options, process.env, TOOLS_ROOT)
    const workDir = join(TOOLS_ROOT, "dist", "device", "build")
    const say = (line: string) => process.stdout.write(line + "\n")
    if (plan.firmwareSha256 !== "") say(`runtime firmware sha256: ${plan.firmwareSha256}`)
    say(`flash: devs ${plan.flashArgs.join(" ")}`)
    if (plan.deployArgs) say(`deploy (in ${workDir}): devs ${plan.deployArgs.join(" ")}`)
    if (options.dryRun) return EXIT_OK

    const built = await buildDevice({ board: plan.target.name, workDir })
    if (!built.ok) throw new RefusedError("device build failed:\n" + built.diagnostics)
    say(`device bytecode: ${built.bytecodeBytes} bytes`)
    if ((await run(plan.flashArgs, TOOLS_ROOT)) !== 0) throw new RefusedError("devs flash failed")
    if (plan.deployArgs) {
        const status = await deploy(plan.deployArgs, workDir, 120_000)
        if (status === "") throw new RefusedError("no deployment reported; is the board connected?")
        say(`deployed: ${status}`)
    } else {
        say(`to deploy the program: (cd ${workDir} && devs devtools main.ts --serial)`)
    }
    return EXIT_OK
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main(process.argv.slice(2)).then(
        (code) => (process.exitCode = code),
        (err) => {
            process.stderr.write(`flash: ${(err as Error).message}\n`)
            process.exitCode = err instanceof UsageError ? EXIT_USAGE : EXIT_REFUSED
        }
    )
}
