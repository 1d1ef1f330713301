/**
 * Shared pieces of the device tools (docs/device.md): the pinned DeviceScript CLI, the list
 * of portable modules every device build must compile (DESIGN.md section 4), and running
 * `devs` on a staged copy of the sources in a private work directory. The compiler finds its
 * built-in packages (@devicescript/core, ...) in node_modules above each source file and
 * writes them under its working directory, so the copy sits below that directory: builds run
 * in parallel, and neither `npm install` nor the state of the checkout's node_modules matters.
 */

import { spawn } from "node:child_process"
import {
    copyFileSync,
    existsSync,
    mkdirSync,
    readdirSync,
    readFileSync,
    rmSync,
    statSync,
} from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/** The only DeviceScript CLI version the build accepts (`devs init` re-pins to latest). */
export const DEVS_VERSION = "2.16.4"

/** Root of the checkout these tools belong to. */
export const TOOLS_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

const PORTABLE_ROOTS = ["boot", "ota", "src", "hal"]
/** Portable trees that are not portable code, and the hand-written entry. */
const NOT_PORTABLE = ["ota/host/", "src/device.ts"]

/** The `devs` binary of this checkout, after checking its version is the pinned one. */
export function devsBinary(): string {
    const pkg = join(TOOLS_ROOT, "node_modules", "@devicescript", "cli", "package.json")
    if (!existsSync(pkg)) throw new Error("@devicescript/cli is not installed: run npm ci")
    const version = JSON.parse(readFileSync(pkg, "utf8")).version
    if (version !== DEVS_VERSION)
        throw new Error(`@devicescript/cli is ${version}; the build is pinned to ${DEVS_VERSION}`)
    return join(TOOLS_ROOT, "node_modules", ".bin", "devs")
}

function listTs(root: string, dir: string): string[] {
    const abs = join(root, dir)
    if (!existsSync(abs)) return []
    const out: string[] = []
    for (const name of readdirSync(abs).sort()) {
        const rel = dir + "/" + name
        if (statSync(join(root, rel)).isDirectory()) out.push(...listTs(root, rel))
        else if (name.endsWith(".ts") && !name.endsWith(".d.ts") && !name.endsWith(".test.ts"))
            out.push(rel)
    }
    return out
}

/**
 * Every portable module under `root` (repository-relative, sorted): all of boot/, ota/ but
 * ota/host/, src/ but src/device.ts, and hal/ including hal/devicescript/.
 */
export function portableModules(root: string): string[] {
    return PORTABLE_ROOTS.flatMap((dir) => listTs(root, dir)).filter(
        (rel) => !NOT_PORTABLE.some((skip) => rel === skip || rel.startsWith(skip))
    )
}

/** Top-level directories a staged copy may hold; cleared before each staging. */
const STAGED_ROOTS = ["boot", "ota", "src", "hal", "test"]

/**
 * Copies repository files `files` (relative to `root`) into `workDir`, keeping their paths,
 * after removing what an earlier staging left there.
 */
export function stageSources(root: string, workDir: string, files: string[]): void {
    mkdirSync(workDir, { recursive: true })
    for (const dir of STAGED_ROOTS) rmSync(join(workDir, dir), { recursive: true, force: true })
    for (const rel of files) {
        const target = join(workDir, rel)
        mkdirSync(dirname(target), { recursive: true })
        copyFileSync(join(root, rel), target)
    }
}

/** An extensionless relative import of repository file `rel` from directory `fromDir`. */
export function importPath(fromDir: string, root: string, rel: string): string {
    let spec = relative(fromDir, join(root, rel)).split("\\").join("/")
    spec = spec.replace(/\.ts$/, "")
    return spec.startsWith(".") ? spec : "./" + spec
}

export interface DevsResult {
    code: number
    stdout: string
    stderr: string
    timedOut: boolean
}

/**
 * Runs `devs` with `args` in `cwd`. No colours, no update check against the registry, and
 * no optional git locks (devs runs `git status` when it finds a repository above cwd).
 */
export function runDevs(args: string[], cwd: string, timeoutMs: number): Promise<DevsResult> {
    return runQuiet(devsBinary(), ["--no-colors", ...args], cwd, timeoutMs)
}

/**
 * Runs `program` with `args` in `cwd` in the environment runDevs uses, collecting its
 * output; killed after `timeoutMs` (timedOut). Also for `node` running the devs CLI.
 */
export function runQuiet(
    program: string,
    args: string[],
    cwd: string,
    timeoutMs: number
): Promise<DevsResult> {
    return new Promise((resolvePromise, reject) => {
        const child = spawn(program, args, {
            cwd,
            env: {
                ...process.env,
                NO_UPDATE_NOTIFIER: "1",
                GIT_OPTIONAL_LOCKS: "0",
                FORCE_COLOR: "0",
                NO_COLOR: "1",
            },
            stdio: ["ignore", "pipe", "pipe"],
        })
        let stdout = ""
        let stderr = ""
        let timedOut = false
        child.stdout.on("data", (d) => (stdout += d.toString()))
        child.stderr.on("data", (d) => (stderr += d.toString()))
        const timer = setTimeout(() => {
            timedOut = true
            child.kill("SIGKILL")
        }, timeoutMs)
        child.on("error", (err) => {
            clearTimeout(timer)
            reject(err)
        })
        child.on("close", (code) => {
            clearTimeout(timer)
            resolvePromise({ code: code ?? 1, stdout, stderr, timedOut })
        })
    })
}

/** Strips ANSI colour codes some devs messages keep despite --no-colors. */
export function plain(text: string): string {
    return text.replace(/\u001b\[[0-9;]*m/g, "")
}
