/**
 * `bulwark ota publish`: signs an offer for an image and runs the update campaign through
 * the broker (ota/host/publisher.ts; docs/update.md; GP-TM-05, GP-TM-18). A progress bar
 * per device goes to stderr; exit 0 only when every targeted device confirmed the new
 * version, 1 when any refused, rolled back or timed out, 2 for bad usage or input.
 */

import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"

import { flag, hasFlag, intFlag, parseArgs, requireFlag, UsageError } from "../args"
import { registerCommands } from "../cli"
import { readPrivateKeyFile } from "../keyfile"
import { readRegistry } from "../provision"
import { chunkCount, MAX_TABLE_CHUNK, MAX_TABLE_ENTRIES } from "../../ota/offer"
import { publishUpdate } from "../../ota/host/publisher"
import { defaultServerName, parseBroker, parseDeviceIds, readOperator } from "../operator-link"
import { readText } from "../operator-link"
import { ProgressBars } from "../../ota/host/progress"

export { defaultServerName, parseBroker, readOperator }

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
        ["json"]
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
        }))
        const offerFormat = chunkTableSize === undefined ? 1 : 2
        process.stdout.write(JSON.stringify({ ok, offerFormat, devices: devicesOut }) + "\n")
    } else {
        for (const r of results)
            process.stdout.write(
                `${r.deviceId}: ${r.ok ? "updated" : "not updated"} (${r.state}${r.check ? ": " + r.check : ""}, runs ${r.running ?? "?"})\n`
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
            "[--chunk-table SIZE] [--json]",
        summary: "sign an offer and update devices over MQTT; exit 0 only if all confirmed",
        run: publishCommand,
    },
])
