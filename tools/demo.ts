/**
 * `npm start`: the whole story on embedded defaults, in one terminal. Throwaway release key,
 * fleet CA and an embedded TLS broker on loopback; three simulated devices provisioned,
 * verified-booted and connected over mutual TLS; then an update campaign in which one
 * device updates and confirms, one is sent a tampered image and refuses it, and one loses
 * power mid-download and recovers. Ends with a summary of what happened and which ENISA
 * measures each step exercised. State lives in one folder, wiped at the start of each run.
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"

import { DeviceProgress, OperatorCredentials, publishUpdate } from "../ota/host/publisher"
import { RunningBroker, startBroker } from "../sim/broker"
import { SimBoard } from "../sim/board"
import { DeviceHandle, startDevice } from "../sim/runner"
import { buildAppBundle } from "./app-build"
import { createCa, issueBrokerCertificate, issueOperatorCertificate, loadCa } from "./ca"
import { generateReleaseKey, ReleasePrivateKey, writeReleaseKeyFiles } from "./keyfile"
import { provision, readRegistry, registryDeviceKeys } from "./provision"
import { buildSignedImage } from "./signer"

export interface DemoOptions {
    /** The state folder; wiped and recreated. */
    dir: string
    profilePath: string
    out: (line: string) => void
    /** Live progress lines rewrite themselves (a terminal). */
    live: boolean
}

export interface DemoRow {
    device: string
    role: string
    boot: string
    connection: string
    update: string
    finalVersion: string
    measures: string[]
    ok: boolean
}

interface DemoDevice {
    id: string
    dir: string
    role: "update" | "tampered" | "power-cut"
    handle: DeviceHandle
    progress: DeviceProgress | null
    cut: boolean
}

const CLASS = "bulwark-demo-sensor"
const BOOT_MEASURES = ["GP-TM-01", "GP-TM-03", "GP-TM-04"]
const LINK_MEASURES = ["GP-TM-21", "GP-TM-39", "GP-TM-40", "GP-TM-49"]
/** Health telemetry and update statuses signed by the identity key, checked by the publisher. */
const SIGNED_MEASURES = ["GP-TM-41"]
const ROLE_MEASURES: Record<DemoDevice["role"], string[]> = {
    update: ["GP-TM-05", "GP-TM-06", "GP-TM-18", "GP-TM-19"],
    tampered: ["GP-TM-04", "GP-TM-05", "GP-TM-54"],
    "power-cut": ["GP-TM-16", "GP-TM-18"],
}

function demoProfile(profilePath: string): Record<string, unknown> {
    const profile = JSON.parse(readFileSync(profilePath, "utf8")) as Record<string, any>
    return {
        ...profile,
        board: "sim",
        deviceClass: CLASS,
        transport: { ...profile.transport, backoffMinMs: 200, backoffMaxMs: 2000 },
        update: { ...profile.update, windowStartHour: 0, windowEndHour: 24, confirmTimeoutMs: 15000 },
    }
}

function bar(p: DeviceProgress | null): string {
    if (!p || p.size === 0) return "[" + ".".repeat(20) + "]   0%"
    const fraction = Math.min(1, p.offset / p.size)
    const filled = Math.round(fraction * 20)
    const pct = String(Math.round(fraction * 100)).padStart(3)
    return "[" + "#".repeat(filled) + ".".repeat(20 - filled) + "] " + pct + "%"
}

class Progress {
    private lines = 0
    private lastPrinted = new Map<string, string>()

    constructor(private readonly options: DemoOptions, private readonly devices: DemoDevice[]) {}

    render(): void {
        const rows = this.devices.map((d) => {
            const state = d.progress ? d.progress.state : "waiting"
            const extra = d.cut ? " (power was cut)" : ""
            return `  ${d.id.padEnd(10)} ${bar(d.progress)} ${state}${d.progress?.check ? ": " + d.progress.check : ""}${extra}`
        })
        if (this.options.live) {
            if (this.lines > 0) process.stdout.write(`\x1b[${this.lines}A`)
            for (const r of rows) process.stdout.write("\x1b[2K" + r + "\n")
            this.lines = rows.length
            return
        }
        for (let i = 0; i < rows.length; i++) {
            const key = this.devices[i].id
            const p = this.devices[i].progress
            const quarter = p && p.size > 0 ? Math.floor((4 * p.offset) / p.size) : 0
            const coarse = `${p ? p.state : "waiting"} ${quarter} ${this.devices[i].cut}`
            if (this.lastPrinted.get(key) !== coarse) {
                this.options.out(rows[i])
                this.lastPrinted.set(key, coarse)
            }
        }
    }
}

async function factory(
    options: DemoOptions,
    key: ReleasePrivateKey,
    caDir: string,
    v1: Buffer,
    index: number
): Promise<{ id: string; dir: string }> {
    const id = `sensor-${index}`
    const dir = join(options.dir, "devices", id)
    const board = await SimBoard.create(dir, {
        profile: demoProfile(options.profilePath),
        trust: [key.anchor],
        counter: 1,
    })
    await board.debugFlash("slot-a", v1)
    await board.otp.burnLock("debug-disabled")
    await board.otp.burnLock("keys-locked")
    board.close()
    await provision({ devDir: dir, caDir, id })
    return { id, dir }
}

function table(rows: DemoRow[]): string[] {
    const head = ["device", "scenario", "verified boot", "connection", "update", "runs", "ENISA measures"]
    const body = rows.map((r) => [
        r.device,
        r.role,
        r.boot,
        r.connection,
        r.update,
        r.finalVersion,
        r.measures.join(" "),
    ])
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
    const line = (cells: string[]) => "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |"
    return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...body.map(line)]
}

/** Runs the story; resolves with the summary rows. Cleans up its broker and devices. */
export async function runDemo(options: DemoOptions, stopSignal: Promise<void>): Promise<DemoRow[]> {
    const out = options.out
    rmSync(options.dir, { recursive: true, force: true })
    mkdirSync(options.dir, { recursive: true })
    let broker: RunningBroker | null = null
    const devices: DemoDevice[] = []
    let stopping = false
    void stopSignal.then(() => {
        stopping = true
    })
    const check = () => {
        if (stopping) throw new Error("stopped by the user")
    }

    try {
        out(`state folder: ${options.dir}`)
        out("")
        out("1. Vendor: release key, app images, fleet CA, broker and operator certificates")
        const key = generateReleaseKey("p256")
        writeReleaseKeyFiles(join(options.dir, "keys"), key)
        const bundle = await buildAppBundle(undefined, join(options.dir, "app.js"))
        const payload = readFileSync(bundle.path)
        const v1 = await buildSignedImage({ payload, version: "1.0.0", counter: 1, deviceClass: CLASS, key })
        const v2 = await buildSignedImage({ payload, version: "2.0.0", counter: 2, deviceClass: CLASS, key })
        const tampered = Buffer.from(v2)
        tampered[Math.floor(tampered.length / 2)] ^= 0x20
        for (const [name, bytes] of [["v1", v1], ["v2", v2], ["v2-tampered", tampered]] as const)
            writeFileSync(join(options.dir, `${name}.img`), bytes)
        out(`   release key anchor ${key.anchor.toString("hex").slice(0, 16)}…, app bundle ${bundle.bytes} bytes`)
        out(`   v1.img (1.0.0, counter 1), v2.img (2.0.0, counter 2), v2-tampered.img (one bit flipped)`)
        const caDir = join(options.dir, "ca")
        await createCa(caDir, "Bulwark demo fleet")
        const ca = await loadCa(caDir)
        await issueBrokerCertificate(ca, ["localhost"], join(caDir, "broker"))
        await issueOperatorCertificate(ca, "release", join(options.dir, "operator"))
        const operator: OperatorCredentials = {
            name: "release",
            certPem: readFileSync(join(options.dir, "operator", "cert.pem"), "utf8"),
            keyPem: readFileSync(join(options.dir, "operator", "key.pem"), "utf8"),
        }
        check()

        broker = await startBroker({ caDir, port: 0, host: "127.0.0.1" })
        out(`   embedded broker: mutual TLS on 127.0.0.1:${broker.port}, per-device topic ACL`)
        out("")
        out("2. Factory: 3 boards get the anchor in OTP, v1 through the debug port, then the")
        out("   debug port is fused off; each generates its key inside its secure element and")
        out("   receives a certificate from the fleet CA")
        const roles: DemoDevice["role"][] = ["update", "tampered", "power-cut"]
        for (let i = 0; i < roles.length; i++) {
            const made = await factory(options, key, caDir, v1, i + 1)
            out(`   ${made.id}: provisioned, debug port locked`)
            const handle = await startDevice(made.dir, { host: "127.0.0.1", port: broker.port })
            devices.push({ ...made, role: roles[i], handle, progress: null, cut: false })
            check()
        }
        out("")
        out("3. Power on: verified boot, then MQTT over mutual TLS")
        for (const d of devices) {
            await d.handle.waitFor((h) => h.app()?.connected === true, 30000, "connection")
            const first = d.handle.boots()[0]
            out(`   ${d.id}: booted slot ${first.booted} version ${first.version} after verification; connected`)
            check()
        }
        out("")
        out("4. Campaign: tampered v2 to sensor-2, then v2 to sensor-1 and sensor-3 (power cut mid-download)")
        const progress = new Progress(options, devices)
        const byId = new Map(devices.map((d) => [d.id, d]))
        const onProgress = (p: DeviceProgress) => {
            const d = byId.get(p.deviceId)
            if (!d) return
            d.progress = { ...p }
            if (d.role === "power-cut" && !d.cut && p.size > 0 && p.offset >= p.size * 0.4) {
                d.cut = true
                d.handle.cutPowerAfter(0, "prefix")
            }
            progress.render()
        }
        const base = Math.floor(Date.now() / 1000)
        const campaign = (image: Buffer, ids: string[], sequence: number) =>
            publishUpdate({
                broker: { host: "127.0.0.1", port: broker!.port },
                serverName: "localhost",
                caPem: ca.certPem,
                operator,
                image,
                key,
                devices: ids,
                // Statuses count only when signed by each device's registered key (GP-TM-41).
                deviceKeys: registryDeviceKeys(readRegistry(caDir), ids).keys,
                sequence,
                timeoutMs: 120000,
                onProgress,
            })
        // One operator session at a time: the broker takes over a second session with the
        // same client id, so the two campaigns run one after the other.
        const results = []
        for (const [image, ids, sequence] of [
            [tampered, ["sensor-2"], base],
            [v2, ["sensor-1", "sensor-3"], base + 1],
        ] as [Buffer, string[], number][]) {
            const result = await Promise.race([campaign(image, ids, sequence), stopSignal.then(() => null)])
            check()
            results.push(...result!)
        }
        check()
        progress.render()
        out("")

        const flat = results
        const rows: DemoRow[] = []
        for (const d of devices) {
            await d.handle
                .waitFor((h) => h.app()?.connected === true && (d.role !== "update" || h.app()!.confirmed || !h.app()!.trial), 20000, "settled")
                .catch(() => undefined)
            const r = flat.find((x) => x.deviceId === d.id)!
            const boots = d.handle.boots()
            const last = boots[boots.length - 1]
            const expected = d.role === "tampered" ? !r.ok && r.state === "refused" : r.ok
            const update =
                d.role === "tampered"
                    ? `refused (${r.check ?? r.state})`
                    : d.role === "power-cut"
                      ? `cut at 40%, resumed (${Math.round((100 * r.served) / Math.max(1, r.size))}% of the image sent), ${r.state}`
                      : r.state
            rows.push({
                device: d.id,
                role: d.role === "update" ? "update" : d.role === "tampered" ? "tampered image" : "power loss",
                boot: boots.every((b) => b.booted !== null)
                    ? `ok (${boots.length} boot${boots.length === 1 ? "" : "s"})`
                    : "recovery",
                connection: d.handle.app()?.connected ? "mutual TLS" : "offline",
                update,
                finalVersion: last.version ?? "-",
                measures: ROLE_MEASURES[d.role],
                ok: expected,
            })
        }
        for (const l of table(rows)) out(l)
        out("")
        out(`Every device: verified boot (${BOOT_MEASURES.join(", ")}), its own key and mutual TLS`)
        out(`(${LINK_MEASURES.join(", ")}), statuses signed by its secure element and checked`)
        out(`(${SIGNED_MEASURES.join(", ")}). Per scenario: the last column. Details: docs/enisa.md`)
        return rows
    } finally {
        for (const d of devices) await d.handle.stop().catch(() => undefined)
        if (broker) await broker.close().catch(() => undefined)
    }
}
