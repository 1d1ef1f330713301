/**
 * `bulwark ca new|issue-broker|issue-operator|revoke|revoke-operator|crl|renew-online` and
 * `bulwark provision [renew]` (docs/provisioning.md; GP-TM-09, GP-TM-21, GP-TM-35, GP-TM-37,
 * GP-TM-39, GP-TM-40, GP-TM-49). Exit 0 on
 * success, 1 when a security check refuses (an existing key, a device already provisioned or
 * registered; a device that did not install its renewed certificate), 2 for bad usage. The
 * setup code appears once, in the provision result.
 */

import { resolve } from "node:path"
import { flag, flagList, hasFlag, intFlag, parseArgs, requireFlag, UsageError } from "../args"
import {
    createCa,
    DEFAULT_DAYS,
    fingerprint,
    issueBrokerCertificate,
    issueOperatorCertificate,
    loadCa,
    OPERATOR_PREFIX,
} from "../ca"
import { registerCommands } from "../cli"
import { noPositional, printResult } from "../command-helpers"
import { DEFAULT_CRL_DAYS, publishCrl } from "../crl"
import { provision, renew, revoke, revokeOperator, revokeSuperseded, updateRegistry } from "../provision"
import { defaultServerName, parseBroker, parseDeviceIds, readOperator } from "../operator-link"
import { renewOnline } from "../renew-online"

function days(args: ReturnType<typeof parseArgs>, fallback: number): { days: number } {
    return { days: intFlag(args, "days", fallback) }
}

async function caNew(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["out", "name", "days"], ["json"])
    noPositional(args.positional)
    const dir = resolve(requireFlag(args, "out"))
    const name = flag(args, "name") ?? "Bulwark fleet CA"
    const issued = await createCa(dir, name, days(args, DEFAULT_DAYS.ca))
    const fp = fingerprint(issued.certPem)
    printResult(
        hasFlag(args, "json"),
        { ok: true, dir, serial: issued.serial, notAfter: issued.notAfter, sha256: fp },
        `fleet CA created in ${dir} (key ca.key.pem, mode 0600; keep it offline)\nSHA-256 ${fp}`
    )
    return 0
}

async function caIssueBroker(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "host", "out", "days"], ["json"])
    noPositional(args.positional)
    const ca = await loadCa(resolve(requireFlag(args, "ca")))
    const hosts = flagList(args, "host")
    const dir = resolve(requireFlag(args, "out"))
    const issued = await issueBrokerCertificate(ca, hosts, dir, days(args, DEFAULT_DAYS.broker))
    printResult(
        hasFlag(args, "json"),
        { ok: true, dir, hosts, serial: issued.serial, notAfter: issued.notAfter },
        `broker certificate for ${hosts.join(", ")} in ${dir} (valid until ${issued.notAfter})`
    )
    return 0
}

async function caIssueOperator(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "name", "out", "days"], ["json"])
    noPositional(args.positional)
    const caDir = resolve(requireFlag(args, "ca"))
    const ca = await loadCa(caDir)
    const name = requireFlag(args, "name")
    const dir = resolve(requireFlag(args, "out"))
    const issued = await updateRegistry(caDir, async (registry) => {
        // A revoked name may be issued again (a new key); its old serials stay revoked.
        const entry = registry.operators.find((o) => o.name === name)
        if (entry && entry.revoked !== true)
            throw new UsageError(`operator ${name} is already registered`)
        const validity = days(args, DEFAULT_DAYS.operator)
        const cert = await issueOperatorCertificate(ca, name, dir, validity)
        if (entry) {
            entry.previousSerials = [...(entry.previousSerials ?? []), entry.certSerial]
            entry.certSerial = cert.serial
            entry.notAfter = cert.notAfter
            entry.revoked = false
        } else {
            registry.operators.push({ name, certSerial: cert.serial, notAfter: cert.notAfter })
        }
        return cert
    })
    const subject = OPERATOR_PREFIX + name
    printResult(
        hasFlag(args, "json"),
        { ok: true, dir, subject, serial: issued.serial, notAfter: issued.notAfter },
        `operator certificate ${subject} in ${dir} (valid until ${issued.notAfter})`
    )
    return 0
}

async function caRevoke(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "id"], ["json", "superseded"])
    noPositional(args.positional)
    const caDir = resolve(requireFlag(args, "ca"))
    const id = requireFlag(args, "id")
    if (hasFlag(args, "superseded")) {
        const retired = await revokeSuperseded(caDir, id)
        const text =
            `device ${retired.deviceId}: ${retired.serials.length} superseded certificates ` +
            `revoked, ${retired.current} stays valid; run \`bulwark ca crl\` for CRL brokers`
        printResult(hasFlag(args, "json"), retired, text)
        return 0
    }
    const result = await revoke(caDir, id)
    const text = `device ${result.deviceId} revoked (${result.serials.length} certificates)`
    printResult(hasFlag(args, "json"), result, text)
    return 0
}

async function caRevokeOperator(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "name"], ["json"])
    noPositional(args.positional)
    const result = await revokeOperator(resolve(requireFlag(args, "ca")), requireFlag(args, "name"))
    const text =
        `operator ${result.name} revoked (${result.serials.length} certificates); ` +
        "run `bulwark ca crl` to tell brokers that read a CRL"
    printResult(hasFlag(args, "json"), { ...result }, text)
    return 0
}

async function caCrl(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "out", "days"], ["json"])
    noPositional(args.positional)
    const caDir = resolve(requireFlag(args, "ca"))
    const out = resolve(requireFlag(args, "out"))
    const result = await publishCrl(caDir, out, intFlag(args, "days", DEFAULT_CRL_DAYS))
    printResult(
        hasFlag(args, "json"),
        {
            ok: true,
            out: result.out,
            revoked: result.revoked,
            crlNumber: result.crlNumber,
            thisUpdate: result.thisUpdate,
            nextUpdate: result.nextUpdate,
        },
        `CRL number ${result.crlNumber} with ${result.revoked} revoked serials written to ` +
            `${result.out}\npublish the next one before ${result.nextUpdate}`
    )
    return 0
}

async function provisionCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "ca", "id", "days"], ["json"])
    noPositional(args.positional)
    const result = await provision({
        devDir: resolve(requireFlag(args, "dir")),
        caDir: resolve(requireFlag(args, "ca")),
        id: flag(args, "id"),
        validity: days(args, DEFAULT_DAYS.device),
    })
    printResult(
        hasFlag(args, "json"),
        { ...result },
        `device ${result.deviceId} provisioned; certificate valid until ${result.notAfter}\n` +
            `setup code (shown once, put it on the label): ${result.setupCode}`
    )
    return 0
}

async function renewCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "ca", "days"], ["json"])
    noPositional(args.positional)
    const result = await renew(
        resolve(requireFlag(args, "dir")),
        resolve(requireFlag(args, "ca")),
        days(args, DEFAULT_DAYS.device)
    )
    const text = `device ${result.deviceId}: new certificate valid until ${result.notAfter}`
    printResult(hasFlag(args, "json"), { ...result }, text)
    return 0
}

/** Default of --within-days: renew a month before the 90-day certificate ends. */
const RENEW_WITHIN_DAYS = 30

async function renewOnlineCommand(argv: string[]): Promise<number> {
    const args = parseArgs(
        argv,
        ["broker", "ca", "operator", "devices", "within-days", "days", "timeout", "server-name"],
        ["json"]
    )
    noPositional(args.positional)
    const broker = parseBroker(requireFlag(args, "broker"))
    const caDir = resolve(requireFlag(args, "ca"))
    const operator = readOperator(resolve(requireFlag(args, "operator")))
    const given = flag(args, "devices")
    const withinDays = intFlag(args, "within-days", RENEW_WITHIN_DAYS)
    const timeout = intFlag(args, "timeout", 120)
    if (withinDays < 0 || withinDays > 36500) throw new UsageError("--within-days: 0 to 36500")
    if (timeout < 1 || timeout > 86400) throw new UsageError("--timeout: 1 to 86400 seconds")
    const validity = days(args, DEFAULT_DAYS.device)
    if (validity.days < 1 || validity.days > 36500) throw new UsageError("--days: 1 to 36500")
    const results = await renewOnline({
        broker,
        serverName: flag(args, "server-name") ?? defaultServerName(broker.host),
        caDir,
        operator,
        devices: given === undefined ? undefined : parseDeviceIds(given),
        withinDays,
        validity,
        timeoutMs: timeout * 1000,
    })
    const ok = results.every((r) => r.ok)
    const lines = results.map((r) =>
        `${r.deviceId}: ${r.ok ? "renewed, valid until " + r.notAfter : r.state}` +
        (r.ok ? "" : ` (at ${r.step}${r.check ? ": " + r.check : ""})`))
    const text = results.length === 0 ? "no device is due for renewal" : lines.join("\n")
    printResult(hasFlag(args, "json"), { ok, devices: results }, text)
    return ok ? 0 : 1
}

registerCommands([
    {
        words: ["ca", "new"],
        usage: "ca new --out DIR [--name NAME] [--days N] [--json]",
        summary: "create the fleet CA (P-256); its key is written once, mode 0600",
        run: caNew,
    },
    {
        words: ["ca", "issue-broker"],
        usage: "ca issue-broker --ca DIR --host NAME [--host ...] --out DIR [--days N] [--json]",
        summary: "issue a broker (server) certificate for the given host names",
        run: caIssueBroker,
    },
    {
        words: ["ca", "issue-operator"],
        usage: "ca issue-operator --ca DIR --name NAME --out DIR [--days N] [--json]",
        summary: "issue an operator (client) certificate that may address every device",
        run: caIssueOperator,
    },
    {
        words: ["ca", "revoke"],
        usage: "ca revoke --ca DIR --id DEVICE [--superseded] [--json]",
        summary:
            "revoke a device: the embedded broker refuses all of its certificates " +
            "(--superseded: only those a renewal replaced)",
        run: caRevoke,
    },
    {
        words: ["ca", "revoke-operator"],
        usage: "ca revoke-operator --ca DIR --name NAME [--json]",
        summary: "revoke an operator certificate: the embedded broker refuses it",
        run: caRevokeOperator,
    },
    {
        words: ["ca", "crl"],
        usage: "ca crl --ca DIR --out FILE [--days N] [--json]",
        summary: "sign a CRL of every revoked serial for brokers such as Mosquitto (crlfile)",
        run: caCrl,
    },
    {
        words: ["ca", "renew-online"],
        usage:
            "ca renew-online --broker HOST:PORT --ca DIR --operator DIR [--devices ID,...] " +
            "[--within-days N] [--days N] [--timeout SEC] [--server-name NAME] [--json]",
        summary: "renew device certificates over MQTT; exit 0 only if every device installed one",
        run: renewOnlineCommand,
    },
    {
        words: ["provision"],
        usage: "provision --dir DEV --ca DIR [--id ID] [--days N] [--json]",
        summary: "create the device key in its secure element, certify it, print the setup code",
        run: provisionCommand,
    },
    {
        words: ["provision", "renew"],
        usage: "provision renew --dir DEV --ca DIR [--days N] [--json]",
        summary: "issue a fresh certificate for the device's existing key",
        run: renewCommand,
    },
])
