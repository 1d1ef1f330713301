/**
 * `bulwark ota publish`: signs an offer for an image and runs the update campaign through
 * the broker (ota/host/publisher.ts; docs/update.md; GP-TM-05, GP-TM-18). A progress bar
 * per device goes to stderr; exit 0 only when every targeted device confirmed the new
 * version, 1 when any refused, rolled back or timed out, 2 for bad usage or input.
 * Statuses must be signed by each device's identity key from the fleet registry (GP-TM-41):
 * a targeted device the registry holds no key for is bad usage, named, unless
 * --accept-unsigned-status; statuses that do not verify are counted in rejectedStatuses.
 */

import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"

import { flag, hasFlag, intFlag, parseArgs, requireFlag, UsageError } from "../args"
import { registerCommands } from "../cli"
import { readPrivateKeyFile } from "../keyfile"
import { readRegistry, registryDeviceKeys } from "../provision"
import { chunkCount, MAX_TABLE_CHUNK, MAX_TABLE_ENTRIES } from "../../ota/offer"
import { publishUpdate } from "../../ota/host/publisher"
import { defaultServerName, parseBroker, parseDeviceIds, readOperator } from "../operator-link"
import { readText } from "../operator-link"
import { ProgressBars } from "../../ota/host/progress"

export { defaultServerName, parseBroker, readOperator }

/**
 * The identity keys of `devices` from the registry of `caDir`. A device without one is a
 * UsageError naming it, unless `acceptUnsigned` (then its statuses are taken unverified).
 */
export function statusKeys(
    caDir: string,
    devices: string[],
    acceptUnsigned: boolean
): Record<string, Buffer> {
    const { keys, missing } = registryDeviceKeys(readRegistry(caDir), devices)
    if (missing.length > 0 && !acceptUnsigned)
        throw new UsageError(
            `no identity public key in the fleet registry for ${missing.join(", ")}: status ` +
                "reports cannot be verified (a certificate renewal records the key; or give " +
                "--accept-unsigned-status)"
        )
    return keys
}

function deviceList(args: ReturnType<typeof parseArgs>, caDir: string): string[] {
    const given = flag(args, "devices")
    if (given !== undefined) return parseDeviceIds(given)
    const ids = readRegistry(caDir).devices.filter((d) => !d.revoked).map((d) => d.id)
    if (ids.length === 0) throw new UsageError("the fleet registry lists no device; give --devices")
    return ids
}

/**
 * `--chunk-table SIZE`: a format 2 offer whose signed chunk table lets each device check
 * every SIZE-byte chunk on arrival (docs/update-format.md). SIZE must not exceed any target
 * device's update.chunkSize, and the image must fit the table's MAX_TABLE_ENTRIES.
 */
export function chunkTableFlag(
    args: ReturnType<typeof parseArgs>,
    imageSize: number
): number | undefined {
    if (flag(args, "chunk-table") === undefined) return undefined
    const size = intFlag(args, "chunk-table")
    if (size < 1 || size > MAX_TABLE_CHUNK)
        throw new UsageError(`--chunk-table must be 1 to ${MAX_TABLE_CHUNK} bytes`)
    const entries = chunkCount(imageSize, size)
    if (entries > MAX_TABLE_ENTRIES)
        throw new UsageError(
            `--chunk-table ${size}: the image needs ${entries} chunks, a table holds at most ` +
                `${MAX_TABLE_ENTRIES}; use at least ${Math.ceil(imageSize / MAX_TABLE_ENTRIES)}`
        )
    return size
}

async function publishCommand(argv: string[]): Promise<number> {
    const args = parseArgs(
        argv,
        [
            "broker",
            "ca",
            "operator",
            "image",
            "key",
            "devices",
            "timeout",
            "seq",
            "expires",
            "server-name",
            "chunk-table",
        ],
        ["json", "accept-unsigned-status"]
    )
    if (args.positional.length > 0) throw new UsageError(`unexpected argument ${args.positional[0]}`)
    const broker = parseBroker(requireFlag(args, "broker"))
    const caDir = resolve(requireFlag(args, "ca"))
    const caPem = readText(join(caDir, "ca.cert.pem"), "fleet CA certificate")
    const operator = readOperator(resolve(requireFlag(args, "operator")))
    const imagePath = resolve(requireFlag(args, "image"))
    let image: Buffer
    try {
        image = readFileSync(imagePath)
    } catch {
        throw new UsageError(`cannot read image: ${imagePath}`)
    }
    const chunkTableSize = chunkTableFlag(args, image.length)
    const key = readPrivateKeyFile(resolve(requireFlag(args, "key")))
    const devices = deviceList(args, caDir)
    const acceptUnsignedStatus = hasFlag(args, "accept-unsigned-status")
    const deviceKeys = statusKeys(caDir, devices, acceptUnsignedStatus)
    const json = hasFlag(args, "json")
    const bars = new ProgressBars(process.stderr, devices, image.length)

    const results = await publishUpdate({
        broker,
        serverName: flag(args, "server-name") ?? defaultServerName(broker.host),
        caPem,
        operator,
        image,
        key,
        devices,
        deviceKeys,
        acceptUnsignedStatus,
        sequence: flag(args, "seq") === undefined ? undefined : intFlag(args, "seq"),
        expiry: flag(args, "expires") === undefined ? null : intFlag(args, "expires"),
        timeoutMs: intFlag(args, "timeout", 300) * 1000,
        chunkTableSize,
        onProgress: (p) => bars.update(p),
    })
    const ok = results.every((r) => r.ok)
    if (json) {
        const devicesOut = results.map((r) => ({
            deviceId: r.deviceId,
            ok: r.ok,
            state: r.state,
            check: r.check,
            running: r.running,
            served: r.served,
            statusAuth: r.statusAuth,
            rejectedStatuses: r.rejectedStatuses,
            lastRejected: r.lastRejected,
        }))
        const offerFormat = chunkTableSize === undefined ? 1 : 2
        const rejectedStatuses = results.reduce((n, r) => n + r.rejectedStatuses, 0)
        process.stdout.write(
            JSON.stringify({ ok, offerFormat, rejectedStatuses, devices: devicesOut }) + "\n"
        )
    } else {
        for (const r of results)
            process.stdout.write(
                `${r.deviceId}: ${r.ok ? "updated" : "not updated"} (${r.state}${r.check ? ": " + r.check : ""}, runs ${r.running ?? "?"})` +
                    (r.rejectedStatuses > 0 ? `; ${r.rejectedStatuses} status(es) rejected, last: ${r.lastRejected}` : "") +
                    (r.statusAuth === "unsigned" ? "; statuses not verified (--accept-unsigned-status)" : "") +
                    "\n"
            )
    }
    return ok ? 0 : 1
}

registerCommands([
    {
        words: ["ota", "publish"],
        usage:
            "ota publish --broker HOST:PORT --ca DIR --operator DIR --image IMAGE --key KEY " +
            "[--devices ID,...] [--timeout SEC] [--seq N] [--expires UNIX] [--server-name NAME] " +
            "[--chunk-table SIZE] [--accept-unsigned-status] [--json]",
        summary: "sign an offer and update devices over MQTT; exit 0 only if all confirmed",
        run: publishCommand,
    },
])
