/**
 * `bulwark broker --ca DIR --port P [--host H] [--cert DIR]`: the embedded MQTT broker of
 * sim/broker.ts, TLS with client certificates from the fleet CA only, each device confined
 * to its own topics (docs/transport.md; GP-TM-39, GP-TM-43, GP-TM-44). Runs until SIGINT or
 * SIGTERM; connection events go to stderr, one line each, without key material.
 */

import { resolve } from "node:path"
import { flag, hasFlag, intFlag, parseArgs, requireFlag, UsageError } from "../args"
import { registerCommands } from "../cli"
import { BrokerEvent, startBroker } from "../../sim/broker"

function logEvent(e: BrokerEvent): void {
    const parts = [`broker: ${e.event}`]
    if (e.peer) parts.push(`peer=${e.peer}`)
    if (e.topic) parts.push(`topic=${e.topic}`)
    if (e.reason) parts.push(`reason=${e.reason}`)
    process.stderr.write(parts.join(" ") + "\n")
}

async function brokerCommand(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["ca", "port", "host", "cert"], ["json", "quiet"])
    if (args.positional.length > 0)
        throw new UsageError(`unexpected argument ${args.positional[0]}`)
    const caDir = resolve(requireFlag(args, "ca"))
    const port = intFlag(args, "port")
    if (port > 65535) throw new UsageError("--port must be at most 65535")
    const certFlag = flag(args, "cert")
    let broker
    try {
        broker = await startBroker({
            caDir,
            certDir: certFlag === undefined ? undefined : resolve(certFlag),
            port,
            host: flag(args, "host") ?? "127.0.0.1",
            onEvent: hasFlag(args, "quiet") ? undefined : logEvent,
        })
    } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (e.code === "ENOENT")
            throw new UsageError(`cannot read ${e.path ?? "a certificate file"}`)
        if (e.code === "EADDRINUSE" || e.code === "EACCES")
            throw new UsageError(`cannot listen: ${e.code}`)
        throw err
    }
    const line = { ok: true, host: broker.host, port: broker.port }
    if (hasFlag(args, "json")) process.stdout.write(JSON.stringify(line) + "\n")
    else
        process.stdout.write(
            `broker listening on ${broker.host}:${broker.port} (TLS, client certificates)\n`
        )
    await new Promise<void>((done) => {
        const stop = () => done()
        process.once("SIGINT", stop)
        process.once("SIGTERM", stop)
    })
    await broker.close()
    return 0
}

registerCommands([
    {
        words: ["broker"],
        usage: "broker --ca DIR --port P [--host 127.0.0.1] [--cert DIR] [--quiet] [--json]",
        summary: "run the embedded TLS MQTT broker (client certificates from the fleet CA)",
        run: brokerCommand,
    },
])
