/**
 * Test helper: runs the Debian Mosquitto broker on a free loopback port with a generated
 * configuration equivalent to the embedded broker's policy: TLS 1.2+ with ECDHE/AEAD suites,
 * require_certificate, use_identity_as_username, the pattern ACL bulwark/%u/# and optionally
 * the fleet CRL as crlfile (GP-TM-39, GP-TM-40, GP-TM-43, GP-TM-47). Interop proof that the
 * device session works against a real broker.
 */

import { ChildProcess, spawn, spawnSync } from "node:child_process"
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** TLS 1.2 suites for Mosquitto's `ciphers` (OpenSSL names); TLS 1.3 suites are AEAD only. */
const MOSQUITTO_CIPHERS = [
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
].join(":")

/** Path of the mosquitto binary, or null when it is not installed. */
export function findMosquitto(): string | null {
    for (const candidate of ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]) {
        const probe = spawnSync(candidate, ["-h"], { stdio: "ignore" })
        if (!probe.error) return candidate
    }
    const which = spawnSync("sh", ["-c", "command -v mosquitto"], { encoding: "utf8" })
    const found = which.status === 0 ? which.stdout.trim() : ""
    return found.length > 0 ? found : null
}

export interface MosquittoOptions {
    /** Fleet CA directory (ca.cert.pem). */
    caDir: string
    /** Broker key.pem and cert.pem (issued by `bulwark ca issue-broker`). */
    certDir: string
    /** Operator subjects ("operator:NAME") allowed to address every device. */
    operators?: string[]
    /**
     * A PEM CRL from `bulwark ca crl`: copied in and named by `crlfile`, so Mosquitto refuses
     * the certificates it lists (GP-TM-40). It must be issued by the fleet CA and current:
     * Mosquitto will not start with an unreadable one and refuses every client once it expires.
     */
    crlFile?: string
}

export interface RunningMosquitto {
    port: number
    close(): Promise<void>
    /** Mosquitto's log so far (stderr), for failure messages. */
    log(): string
}

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer()
        server.once("error", reject)
        server.listen(0, "127.0.0.1", () => {
            const address = server.address()
            const port = typeof address === "object" && address ? address.port : 0
            server.close(() => resolve(port))
        })
    })
}

function canConnect(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = new Socket()
        socket.once("connect", () => {
            socket.destroy()
            resolve(true)
        })
        socket.once("error", () => resolve(false))
        socket.connect(port, "127.0.0.1")
    })
}

/** The configuration file; every path is inside `dir` (the CRL too, with `crl`). */
export function mosquittoConfig(dir: string, port: number, crl = false): string {
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        `acl_file ${join(dir, "acl")}`,
        `listener ${port} 127.0.0.1`,
        `cafile ${join(dir, "ca.cert.pem")}`,
        `certfile ${join(dir, "cert.pem")}`,
        `keyfile ${join(dir, "key.pem")}`,
        ...(crl ? [`crlfile ${join(dir, "crl.pem")}`] : []),
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.2",
        `ciphers ${MOSQUITTO_CIPHERS}`,
        "",
    ].join("\n")
}

/** The ACL: each client only under bulwark/<its certificate CN>/, operators everywhere. */
export function mosquittoAcl(operators: string[]): string {
    const lines = ["pattern readwrite bulwark/%u/#", ""]
    for (const name of operators) lines.push(`user ${name}`, "topic readwrite bulwark/#", "")
    return lines.join("\n")
}

/** Starts Mosquitto; throws when it is not installed or does not come up. */
export async function startMosquitto(options: MosquittoOptions): Promise<RunningMosquitto> {
    const binary = findMosquitto()
    if (binary === null) throw new Error("mosquitto is not installed")
    const dir = mkdtempSync(join(tmpdir(), "bulwark-mosquitto-"))
    copyFileSync(join(options.caDir, "ca.cert.pem"), join(dir, "ca.cert.pem"))
    copyFileSync(join(options.certDir, "cert.pem"), join(dir, "cert.pem"))
    copyFileSync(join(options.certDir, "key.pem"), join(dir, "key.pem"))
    writeFileSync(join(dir, "acl"), mosquittoAcl(options.operators ?? []), { mode: 0o600 })
    const crl = options.crlFile !== undefined
    if (crl) copyFileSync(options.crlFile!, join(dir, "crl.pem"))

    let lastError = "did not start"
    for (let tries = 0; tries < 3; tries++) {
        const port = await freePort()
        // As root, Mosquitto drops to the "mosquitto" user unless told otherwise; the files
        // are in a private temp dir, so keep the current user instead.
        const user = process.getuid && process.getuid() === 0 ? "user root\n" : ""
        writeFileSync(join(dir, "mosquitto.conf"), user + mosquittoConfig(dir, port, crl))
        const child = spawn(binary, ["-c", join(dir, "mosquitto.conf")], {
            stdio: ["ignore", "ignore", "pipe"],
        })
        let log = ""
        child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()))
        const up = await waitUp(child, port)
        if (up) return running(child, port, dir, () => log)
        lastError = log
        child.kill("SIGKILL")
    }
    rmSync(dir, { recursive: true, force: true })
    throw new Error("mosquitto did not start: " + lastError)
}

async function waitUp(child: ChildProcess, port: number): Promise<boolean> {
    for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null) return false
        if (await canConnect(port)) return true
        await new Promise((r) => setTimeout(r, 50))
    }
    return false
}

function running(
    child: ChildProcess,
    port: number,
    dir: string,
    log: () => string
): RunningMosquitto {
    return {
        port,
        log,
        async close() {
            if (child.exitCode === null) {
                const exited = new Promise((r) => child.once("exit", r))
                child.kill("SIGTERM")
                await exited
            }
            rmSync(dir, { recursive: true, force: true })
        },
    }
}
