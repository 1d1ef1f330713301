/**
 * `bulwark telemetry verify` (docs/telemetry.md; GP-TM-41): checks a device's signed
 * telemetry envelope offline against the device public key and, optionally, the device id
 * and the last (boot, seq) accepted: exit 0 genuine and newer, 1 refused, 2 unreadable.
 */

import { TelemetryError } from "../../src/telemetry"
import { RefusedError, UsageError, flag, parseArgs, requireFlag } from "../args"
import { readDevicePublicKey } from "../audit-verify"
import { registerCommands } from "../cli"
import { printOk, readInput } from "../command-helpers"
import { parsePosition, telemetryJson, verifyTelemetryBytes } from "../telemetry"

async function verifyCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device-pub", "device", "after"], ["json"])
    if (args.positional.length !== 1) throw new UsageError("expected one telemetry FILE")
    const devicePub = readDevicePublicKey(requireFlag(args, "device-pub"))
    const afterText = flag(args, "after")
    const after = afterText === undefined ? null : parsePosition(afterText, "after")
    const deviceId = flag(args, "device") ?? null
    const bytes = readInput(args.positional[0], "telemetry")
    try {
        const m = await verifyTelemetryBytes(devicePub, bytes, { deviceId, after })
        const fields = telemetryJson(m)
        const text =
            `genuine: ${m.deviceId} boot ${m.boot} seq ${m.seq}, ` +
            `time ${m.time === 0 ? "unknown" : m.time}: ${m.body.toString("utf8")}`
        printOk(args, { genuine: true, ...fields }, text)
        return 0
    } catch (err) {
        if (!(err instanceof TelemetryError)) throw err
        if (err.check === "format") throw new UsageError(`unreadable telemetry: ${err.message}`)
        throw new RefusedError(`${err.check}: ${err.message}`, { genuine: false, check: err.check })
    }
}

registerCommands([
    {
        words: ["telemetry", "verify"],
        usage: "telemetry verify FILE --device-pub FILE [--device ID] [--after BOOT:SEQ] [--json]",
        summary: "check a device's signed telemetry offline (identity key, device id, order)",
        run: verifyCommand,
    },
])
