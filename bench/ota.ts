/**
 * Benchmark of update delivery (GP-TM-18; DESIGN.md section 7): a 1 MiB signed image
 * offered to a provisioned sim device through the embedded broker on loopback, timed from
 * the offer to the moment the last chunk is written to the slot (bytes per second delivered
 * and written), next to the raw throughput of the same bytes over a plain TLS socket on
 * loopback in the same run. Prints both and the ratio. Run: `npm run bench:ota` [--json].
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tls from "node:tls"

import { publishUpdate } from "../ota/host/publisher"
import { startBroker } from "../sim/broker"
import { SimBoard } from "../sim/board"
import { startDevice } from "../sim/runner"
import { testProfileJson } from "../sim/testing"
import { createCa, issueBrokerCertificate, issueOperatorCertificate, loadCa } from "../tools/ca"
import { generateReleaseKey } from "../tools/keyfile"
import { provision, readRegistry, registryDeviceKeys } from "../tools/provision"
import { buildSignedImage } from "../tools/signer"
import { buildAppBundle } from "../tools/app-build"

const IMAGE_PAYLOAD = 1024 * 1024 - 4096
const RUNS = 3
const CHUNK = 4096

function median(values: number[]): number {
    const sorted = values.slice(0).sort((a, b) => a - b)
    return sorted[Math.floor(sorted.length / 2)]
}

function pseudoRandom(size: number): Buffer {
    const out = Buffer.alloc(size)
    for (let i = 0; i < size; i++) out[i] = (i * 2654435761) >>> 24
    return out
}

/** Milliseconds to push `bytes` through a TLS connection on loopback, in CHUNK writes. */
async function rawTls(bytes: Buffer, key: string, cert: string, ca: string): Promise<number> {
    let received = 0
    let done: () => void = () => undefined
    const finished = new Promise<void>((resolve) => (done = resolve))
    const server = tls.createServer({ key, cert, minVersion: "TLSv1.2" }, (socket) => {
        socket.on("data", (d: Buffer) => {
            received += d.length
            if (received >= bytes.length) done()
        })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as { port: number }).port
    const socket = tls.connect({ host: "127.0.0.1", port, ca: [ca], servername: "localhost" })
    await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()))
    const start = performance.now()
    for (let at = 0; at < bytes.length; at += CHUNK) {
        if (!socket.write(bytes.subarray(at, at + CHUNK)))
            await new Promise<void>((resolve) => socket.once("drain", () => resolve()))
    }
    await finished
    const elapsed = performance.now() - start
    socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    return elapsed
}

async function main(): Promise<void> {
    const json = process.argv.includes("--json")
    const work = mkdtempSync(join(tmpdir(), "bulwark-bench-ota-"))
    try {
        const caDir = join(work, "ca")
        await createCa(caDir, "bench fleet")
        const ca = await loadCa(caDir)
        await issueBrokerCertificate(ca, ["localhost"], join(caDir, "broker"))
        await issueOperatorCertificate(ca, "bench", join(work, "operator"))
        const operator = {
            name: "bench",
            certPem: readFileSync(join(work, "operator", "cert.pem"), "utf8"),
            keyPem: readFileSync(join(work, "operator", "key.pem"), "utf8"),
        }
        const broker = await startBroker({ caDir, port: 0 })
        const key = generateReleaseKey("p256")
        const app = readFileSync((await buildAppBundle(undefined, join(work, "app.js"))).path)
        const v1 = await buildSignedImage({ payload: app, version: "1.0.0", counter: 1, deviceClass: "bench", key })
        const v2 = await buildSignedImage({
            payload: pseudoRandom(IMAGE_PAYLOAD),
            version: "2.0.0",
            counter: 2,
            deviceClass: "bench",
            key,
        })
        const profile = testProfileJson({ slotSize: 1024 * 1024 + 65536, deviceClass: "bench" })

        const otaMs: number[] = []
        for (let run = 0; run < RUNS; run++) {
            const dir = join(work, "dev" + run)
            const board = await SimBoard.create(dir, { profile, trust: [key.anchor], counter: 1 })
            await board.debugFlash("slot-a", v1)
            board.close()
            const { deviceId } = await provision({ devDir: dir, caDir, iterations: 1000 })
            const device = await startDevice(dir, { host: "127.0.0.1", port: broker.port })
            await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")

            const start = performance.now()
            let written = -1
            await publishUpdate({
                broker: { host: "127.0.0.1", port: broker.port },
                serverName: "localhost",
                caPem: ca.certPem,
                operator,
                image: v2,
                key,
                devices: [deviceId],
                deviceKeys: registryDeviceKeys(readRegistry(caDir), [deviceId]).keys,
                sequence: 100 + run,
                timeoutMs: 60000,
                onProgress: (p) => {
                    if (written < 0 && p.state === "verifying") written = performance.now() - start
                },
            }).catch(() => undefined)
            await device.stop()
            if (written < 0) throw new Error("the device never finished the download")
            otaMs.push(written)
        }
        await broker.close()

        const keyPem = readFileSync(join(caDir, "broker", "key.pem"), "utf8")
        const certPem = readFileSync(join(caDir, "broker", "cert.pem"), "utf8")
        const rawMs: number[] = []
        for (let run = 0; run < RUNS; run++) rawMs.push(await rawTls(v2, keyPem, certPem, ca.certPem))

        const ota = (v2.length / median(otaMs)) * 1000
        const raw = (v2.length / median(rawMs)) * 1000
        const result = {
            imageBytes: v2.length,
            chunkBytes: CHUNK,
            otaBytesPerSec: Math.round(ota),
            rawTlsBytesPerSec: Math.round(raw),
            ratio: Number((raw / ota).toFixed(2)),
            otaMs: otaMs.map((m) => Math.round(m)),
            rawTlsMs: rawMs.map((m) => Math.round(m)),
        }
        if (json) {
            process.stdout.write(JSON.stringify(result) + "\n")
        } else {
            const kib = (b: number) => (b / 1024).toFixed(0) + " KiB/s"
            process.stdout.write(`update delivery, ${v2.length} bytes, ${CHUNK}-byte chunks, median of ${RUNS}\n`)
            process.stdout.write(`  OTA through the broker (delivered and written): ${kib(ota)}\n`)
            process.stdout.write(`  raw TLS socket on loopback:                     ${kib(raw)}\n`)
            process.stdout.write(`  ratio raw / OTA: ${result.ratio}x\n`)
        }
    } finally {
        rmSync(work, { recursive: true, force: true })
    }
}

await main()
