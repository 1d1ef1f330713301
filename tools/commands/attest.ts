/**
 * `bulwark attest verify|request` (docs/attestation.md; GP-TM-56, GP-TM-41): checks a
 * device's attestation report offline against the device public key, the nonce asked for
 * and, optionally, the expected image digest and lowest security counter (exit 0 genuine
 * and as expected, 1 not, 2 unreadable); signs an attestation request with an operator key.
 */

import { writeFileSync } from "node:fs"
import { AttestError } from "../../src/attest"
import { RefusedError, UsageError, flag, intFlag, parseArgs, requireFlag } from "../args"
import { signAttestRequest, reportJson, verifyReportBytes } from "../attest"
import { readDevicePublicKey, readOperatorKey } from "../audit-verify"
import { registerCommands } from "../cli"
import { noPositional, printOk, readInput } from "../command-helpers"

function hexFlag(value: string | undefined, bytes: number, name: string): Buffer | null {
    if (value === undefined) return null
    if (value.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(value))
        throw new UsageError(`--${name} needs ${bytes * 2} hex digits`)
    return Buffer.from(value, "hex")
}

async function verifyCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device-pub", "nonce", "expect-digest", "min-counter"], ["json"])
    if (args.positional.length !== 1) throw new UsageError("expected one REPORT file")
    const devicePub = readDevicePublicKey(requireFlag(args, "device-pub"))
    const nonce = hexFlag(requireFlag(args, "nonce"), 16, "nonce")!
    const digest = hexFlag(flag(args, "expect-digest"), 32, "expect-digest")
    const minCounter = flag(args, "min-counter") === undefined ? null : intFlag(args, "min-counter", 0)
    const bytes = readInput(args.positional[0], "report")
    try {
        const report = await verifyReportBytes(devicePub, bytes, { nonce, digest, minCounter })
        const text =
            `genuine: ${report.deviceId} runs ${report.version} from slot ${report.slot} ` +
            `(security counter ${report.securityCounter}, digest ${report.digest.toString("hex")}` +
            `${report.trial ? ", trial boot" : ""}); self-test ` +
            (report.selfTestOk ? "passed" : "failed: " + report.selfTestFailed)
        printOk(args, { genuine: true, report: reportJson(report) }, text)
        return 0
    } catch (err) {
        if (!(err instanceof AttestError)) throw err
        if (err.check === "format") throw new UsageError(`unreadable report: ${err.message}`)
        throw new RefusedError(`refused: ${err.check}: ${err.message}`, {
            genuine: false,
            check: err.check,
        })
    }
}

async function requestCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device", "key", "expires-in", "out"], ["json"])
    noPositional(args.positional)
    const key = readOperatorKey(requireFlag(args, "key"))
    const expiresIn = intFlag(args, "expires-in", 600)
    const expires = expiresIn === 0 ? 0 : Math.floor(Date.now() / 1000) + expiresIn
    const device = requireFlag(args, "device")
    const request = signAttestRequest(key, device, expires)
    const file = requireFlag(args, "out")
    writeFileSync(file, request.bytes, { flag: "wx" })
    const nonce = request.nonce.toString("hex")
    const pub = request.operatorPublicKey.toString("hex")
    printOk(
        args,
        { out: file, deviceId: device, nonce, operatorPublicKey: pub, expires },
        `wrote ${file}; publish it on bulwark/${device}/attest/request, then check the ` +
            `report with --nonce ${nonce}`
    )
    return 0
}

registerCommands([
    {
        words: ["attest", "verify"],
        usage:
            "attest verify REPORT --device-pub FILE --nonce HEX [--expect-digest HEX] " +
            "[--min-counter N] [--json]",
        summary: "check a device's signed attestation report offline (measured boot, OTP, self-test)",
        run: verifyCommand,
    },
    {
        words: ["attest", "request"],
        usage: "attest request --device ID --key OPERATOR_KEY --out FILE [--expires-in SECONDS] [--json]",
        summary: "sign an attestation request with a fresh nonce and an operator key",
        run: requestCommand,
    },
])
