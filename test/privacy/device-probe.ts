/**
 * One privacy scenario written in the DeviceScript subset, run both on Node and in
 * DeviceScript's VM by device.test.ts, which compares the lines it returns (GP-TM-10,
 * GP-TM-14 on both targets): prefs on a RAM partition, consent, minimised collection, the
 * published payload, export, rectification with non-ASCII text, retention, erasure.
 */

import { Clock } from "../../hal/clock"
import { Crypto } from "../../hal/crypto"
import { FlashPartition } from "../../hal/flash"
import { PrefsStore } from "../../src/prefs"
import { exportText } from "../../src/privacy/export"
import { uintText } from "../../src/privacy/held"
import { PrivacyManager } from "../../src/privacy/manager"
import { decodeConsoleLine, decodeOperatorBody } from "../../src/privacy/requests"
import { RightsDeps, handleConsoleLine } from "../../src/privacy/rights"

/** Yields to the runtime: DeviceScript stops a run that loops too long without an await. */
export type Pause = () => Promise<void>

const SIZE = 2048
const SECTOR = 1024

class RamPartition implements FlashPartition {
    readonly name = "prefs"
    readonly size = SIZE
    readonly sectorSize = SECTOR
    readonly writeAlign = 4
    private readonly mem: Buffer
    private readonly pause: Pause

    constructor(pause: Pause) {
        this.pause = pause
        this.mem = Buffer.alloc(SIZE)
        for (let i = 0; i < SIZE; i++) this.mem[i] = 0xff
    }

    async read(offset: number, length: number): Promise<Buffer> {
        await this.pause()
        return this.mem.slice(offset, offset + length)
    }

    async erase(offset: number, length: number): Promise<void> {
        await this.pause()
        for (let i = offset; i < offset + length; i++) this.mem[i] = 0xff
    }

    async program(offset: number, data: Buffer): Promise<void> {
        await this.pause()
        for (let i = 0; i < data.length; i++) {
            if (this.mem[offset + i] !== 0xff) throw new RangeError("program into cells not erased")
            this.mem[offset + i] = data[i]
        }
    }
}

class ProbeClock implements Clock {
    mono = 0
    wall: number | null = 1700000000

    monotonicMs(): number {
        return this.mono
    }

    wallTime(): number | null {
        return this.wall
    }

    async sleep(ms: number): Promise<void> {
        this.mono = this.mono + ms
    }
}

function yesNo(value: boolean): string {
    return value ? "yes" : "no"
}

/** Runs the scenario; every line is an observation both targets must make alike. */
export async function runPrivacyProbe(crypto: Crypto, pause: Pause): Promise<string[]> {
    const out: string[] = []
    const audit: string[] = []
    const clock = new ProbeClock()
    const part = new RamPartition(pause)
    const sink = async function (e: string, a: string, o: string, d: string): Promise<void> {
        audit.push(e + " " + a + " " + o + " " + d)
    }

    let prefs = await PrefsStore.open(part, crypto)
    await prefs.update({ "pref.a": "x", "owner.name": "Zoë Åström" })
    prefs = await PrefsStore.open(part, crypto)
    out.push("prefs " + prefs.get("owner.name") + " " + prefs.keys().length)
    await prefs.replaceAll({})

    let m = await PrivacyManager.open({ prefs: prefs, clock: clock, audit: sink })
    out.push("telemetry off " + yesNo(!m.mayCollect("telemetry")))
    out.push("refused " + yesNo(!(await m.collect("telemetry", { temperature: 21 }))))
    await m.setConsent("telemetry", true, "console:owner")
    await m.collect("telemetry", { temperature: 21.25, humidity: 40.4, owner: "x" })
    await m.setConsent("location", true, "console:owner")
    await m.collect("location", { lat: 48.85837, lon: 2.294481 })
    await m.collect("usage-history", { day: 19675, energy: 4321, meanTemp: 20.44 })
    await m.rectify("owner-profile", "name", "Zoë Ångström", "console:owner")
    const sent: string[] = []
    const count = await m.publishHeld("telemetry", async function (p: Buffer) {
        sent.push(p.toString("utf-8"))
        return true
    })
    out.push("sent " + count + " " + sent.join(" "))
    out.push("export " + exportText(m, "dev-probe", clock.wallTime()))

    prefs = await PrefsStore.open(part, crypto)
    m = await PrivacyManager.open({ prefs: prefs, clock: clock, audit: sink })
    const name = m.valueOf("owner-profile", "name")
    out.push("reopened " + m.held("owner-profile").length + " " + name)
    clock.wall = 1700000000 + 31 * 86400
    out.push("purged " + (await m.purgeExpired()))

    const deps: RightsDeps = {
        manager: m,
        prefs: prefs,
        crypto: crypto,
        clock: clock,
        audit: sink,
        deviceId: "dev-probe",
        consoleOwner: function (): boolean {
            return true
        },
        operatorKeys: [],
        verify: async function (k: Buffer, msg: Buffer, sig: Buffer): Promise<boolean> {
            return false
        },
    }
    const set = await handleConsoleLine(deps, "privacy set preferences brightness 40")
    out.push("set " + yesNo(set.ok) + " " + m.valueOf("preferences", "brightness"))
    const line = decodeConsoleLine("privacy consent location withdraw")
    out.push("line " + line.right + " " + line.category + " " + yesNo(line.on))
    const body = decodeOperatorBody(
        Buffer.from(
            '{"v":1,"device":"dev-probe","id":"r1","seq":"4294967295","expires":"1700003600",' +
                '"right":"rectify","args":{"category":"owner-profile","field":"name","value":"Ö"}}'
        )
    )
    const times = uintText(body.seq) + " " + uintText(body.expires)
    out.push("body " + times + " " + body.request.value)
    const erased = await handleConsoleLine(deps, "privacy erase dev-probe")
    out.push("erased " + yesNo(erased.ok) + " " + prefs.keys().length + " " + m.consents().length)
    for (let i = 0; i < audit.length; i++) out.push("audit " + audit[i])
    return out
}
