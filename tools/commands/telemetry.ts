/**
 * `bulwark telemetry verify` (docs/telemetry.md; GP-TM-41): checks a device's signed
 * envelope offline against the device public key, as the kind `--kind` names (telemetry by
 * default; ota-status, data-telemetry, privacy-reply) and, optionally, the device id and
 * the last (boot, seq) accepted: exit 0 genuine and newer, 1 refused (including an envelope
 * of another kind: "signature"), 2 unreadable or bad usage.
 */

import { TelemetryError } from "../../src/telemetry"
import { RefusedError, UsageError, flag, parseArgs, requireFlag } from "../args"
import { readDevicePublicKey } from "../audit-verify"
import { registerCommands } from "../cli"
import { printOk, readInput } from "../command-helpers"
import { kindLabel, parsePosition, telemetryJson, verifyTelemetryBytes } from "../telemetry"

async function verifyCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device-pub", "device", "after", "kind"], ["json"])
    if (args.positional.length !== 1) throw new UsageError("expected one telemetry FILE")
    const kind = flag(args, "kind") ?? "telemetry"
    const label = kindLabel(kind)
    const devicePub = readDevicePublicKey(requireFlag(args, "device-pub"))
    const afterText = flag(args, "after")
    const after = afterText === undefined ? null : parsePosition(afterText, "after")
    const deviceId = flag(args, "device") ?? null
    const bytes = readInput(args.positional[0], "telemetry")
    try {
        const m = await verifyTelemetryBytes(devicePub, bytes, { deviceId, after, label })
        const fields = telemetryJson(m)
        const text =
            `genuine${kind === "telemetry" ? "" : " " + kind}: ` +
            `${m.deviceId} boot ${m.boot} seq ${m.seq}, ` +
            `time ${m.time === 0 ? "unknown" : m.time}: ${m.body.toString("utf8")}`
        printOk(args, { genuine: true, kind, ...fields }, text)
        return 0
    } catch (err) {
        if (!(err instanceof TelemetryError)) throw err
        if (err.check === "format") throw new UsageError(`unreadable ${kind}: ${err.message}`)
        throw new RefusedError(`${err.check}: ${err.message}`, {
            genuine: false, kind, check: err.check,
        })
    }
}

registerCommands([
    {
        words: ["telemetry", "verify"],
        usage:
            "telemetry verify FILE --device-pub FILE " +
            "[--kind telemetry|ota-status|data-telemetry|privacy-reply] [--device ID] " +
            "[--after BOOT:SEQ] [--json]",
        summary: "check a device's signed envelope offline (identity key, kind, device id, order)",
        run: verifyCommand,
    },
])
