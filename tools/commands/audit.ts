/**
 * `bulwark audit verify|device-pub|request|export` (docs/audit-log.md; GP-TM-55): checks an
 * audit export offline with only the device public key and names the first record that
 * was altered, removed, reordered or forged (exit 0 genuine, 1 tampered, 2 unreadable);
 * prints a sim device's public key; makes and serves operator-signed export requests.
 */

import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { serveExportRequest } from "../../src/audit/export"
import { startSecurityServices } from "../../src/admin/service"
import { VerifyReport } from "../../src/audit/verify"
import { SimBoard } from "../../sim/board"
import {
    RefusedError,
    UsageError,
    flag,
    intFlag,
    parseArgs,
    requireFlag,
} from "../args"
import {
    publicKeyPem,
    readDevicePublicKey,
    readOperatorKey,
    signExportRequest,
    verifyExportFile,
} from "../audit-verify"
import { registerCommands } from "../cli"
import { noPositional, printOk } from "../command-helpers"

async function openDevice(dir: string): Promise<SimBoard> {
    const path = resolve(dir)
    if (!existsSync(join(path, "board.json")))
        throw new UsageError(`not a device directory: ${dir}`)
    return SimBoard.open(path, { clock: "real" })
}

function describeReport(report: VerifyReport): string {
    const range = `seq ${report.firstSeq}..${report.headSeq}`
    if (report.genuine)
        return (
            `genuine: ${report.records} records (${range}) of ${report.deviceId}, all proven ` +
            `by the device key (${report.checkpoints} signed checkpoints)` +
            (report.lostBefore > 0 ? `; ${report.lostBefore} older records were recycled` : "")
        )
    const bad = report.firstBad!
    const where = bad.index < 0 ? "the export header" : `record seq ${bad.seq} (index ${bad.index})`
    return `tampered: ${where} ${bad.problem}: ${bad.detail}`
}

async function verifyCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device-pub"], ["json"])
    if (args.positional.length !== 1) throw new UsageError("expected one EXPORT file")
    const devicePub = readDevicePublicKey(requireFlag(args, "device-pub"))
    const report = await verifyExportFile(args.positional[0], devicePub)
    const details = { ...report } as Record<string, unknown>
    if (!report.genuine) throw new RefusedError(describeReport(report), details)
    printOk(args, details, describeReport(report))
    return 0
}

async function devicePubCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "out"], ["json"])
    noPositional(args.positional)
    const board = await openDevice(requireFlag(args, "dir"))
    let raw: Buffer
    try {
        raw = await board.secureElement.publicKey(SE_SLOT_IDENTITY)
    } catch {
        throw new RefusedError("the device has no identity key: provision it first")
    } finally {
        board.close()
    }
    const pem = publicKeyPem(raw)
    const file = flag(args, "out")
    if (file !== undefined) writeFileSync(file, pem, { flag: "wx" })
    const text = file ? `wrote ${file}` : pem
    printOk(args, { publicKey: raw.toString("hex"), out: file ?? null }, text)
    return 0
}

async function requestCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["device", "key", "from", "expires-in", "out"], ["json"])
    noPositional(args.positional)
    const key = readOperatorKey(requireFlag(args, "key"))
    const expiresIn = intFlag(args, "expires-in", 3600)
    const expires = expiresIn === 0 ? 0 : Math.floor(Date.now() / 1000) + expiresIn
    const device = requireFlag(args, "device")
    const request = signExportRequest(key, device, intFlag(args, "from", 0), expires)
    const file = requireFlag(args, "out")
    writeFileSync(file, request.bytes, { flag: "wx" })
    const pub = request.operatorPublicKey.toString("hex")
    printOk(
        args,
        { out: file, deviceId: device, operatorPublicKey: pub, expires },
        `wrote ${file}; the device must list this operator key in security.operatorKeys:\n${pub}`
    )
    return 0
}

async function exportCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "request", "out"], ["json"])
    noPositional(args.positional)
    let request: Buffer
    try {
        request = readFileSync(requireFlag(args, "request"))
    } catch {
        throw new UsageError("cannot read the request file")
    }
    const file = requireFlag(args, "out")
    const board = await openDevice(requireFlag(args, "dir"))
    const pieces: Buffer[] = []
    let answer: string
    try {
        const services = await startSecurityServices(board, board.profile)
        if (services.exportContext === null)
            throw new RefusedError("the device has no identity: provision it first")
        answer = await serveExportRequest(services.exportContext, request, async (p) => {
            pieces.push(p)
        })
    } finally {
        board.close()
    }
    // The device's answer is all an operator learns; the reason is in its audit log.
    if (answer !== "ok") throw new RefusedError("the device refused the export request")
    const bytes = Buffer.concat(pieces)
    writeFileSync(file, bytes, { flag: "wx" })
    printOk(args, { out: file, bytes: bytes.length }, `wrote ${file} (${bytes.length} bytes)`)
    return 0
}

registerCommands([
    {
        words: ["audit", "verify"],
        usage: "audit verify EXPORT --device-pub FILE [--json]",
        summary: "check an audit export offline; names the first altered/removed/forged record",
        run: verifyCommand,
    },
    {
        words: ["audit", "device-pub"],
        usage: "audit device-pub --dir DEV [--out FILE] [--json]",
        summary: "print a simulated device's identity public key (PEM) for audit verify",
        run: devicePubCommand,
    },
    {
        words: ["audit", "request"],
        usage:
            "audit request --device ID --key OPERATOR_KEY --out FILE [--from SEQ] " +
            "[--expires-in SECONDS] [--json]",
        summary: "sign an audit-export request with an operator key",
        run: requestCommand,
    },
    {
        words: ["audit", "export"],
        usage: "audit export --dir DEV --request FILE --out FILE [--json]",
        summary: "serve an operator-signed export request on a simulated device (not running)",
        run: exportCommand,
    },
])
