/**
 * The sim transport facing a broker that holds a valid certificate but misbehaves: oversized
 * messages are dropped or cut off before they are buffered (GP-TM-54), and a broker that stops
 * answering keep-alive pings loses the session instead of leaving it half-open (GP-TM-17).
 */

import { AddressInfo } from "node:net"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as tls from "node:tls"
import * as mqtt from "mqtt-packet"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
    connectOptions,
    Credentials,
    deviceCredentials,
    Fleet,
    makeFleet,
    removeTempDirs,
    transportFor,
} from "./fixtures"

let fleet: Fleet
let dev: Credentials

beforeAll(async () => {
    fleet = await makeFleet()
    dev = await deviceCredentials(fleet.ca, "dev-a")
})

afterAll(() => removeTempDirs())

/**
 * A TLS server with the fleet's broker certificate that answers CONNECT with CONNACK and
 * then runs `script` on the raw socket; it never answers PINGREQ.
 */
async function hostileBroker(script: (socket: tls.TLSSocket) => void): Promise<tls.Server> {
    const server = tls.createServer(
        {
            key: readFileSync(join(fleet.brokerDir, "key.pem")),
            cert: readFileSync(join(fleet.brokerDir, "cert.pem")),
            ca: [fleet.ca.certPem],
            requestCert: true,
            rejectUnauthorized: true,
        },
        (socket) => {
            const parser = mqtt.parser({ protocolVersion: 4 })
            parser.on("packet", (p: mqtt.Packet) => {
                if (p.cmd !== "connect") return
                const connack = { cmd: "connack" as const, returnCode: 0, sessionPresent: false }
                socket.write(mqtt.generate(connack))
                script(socket)
            })
            socket.on("data", (c: Buffer) => parser.parse(c))
            socket.on("error", () => undefined)
        }
    )
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
    return server
}

function portOf(server: tls.Server): number {
    return (server.address() as AddressInfo).port
}

function publishPacket(topic: string, payload: Buffer): Buffer {
    return mqtt.generate({ cmd: "publish", topic, payload, qos: 0, dup: false, retain: false })
}

describe("hostile broker (GP-TM-54, GP-TM-17)", () => {
    it("GP-TM-54: a message over maxPayload is dropped; the next one still arrives", async () => {
        const server = await hostileBroker((socket) => {
            socket.write(publishPacket("bulwark/dev-a/cmd/x", Buffer.alloc(5000, 0x41)))
            socket.write(publishPacket("bulwark/dev-a/cmd/x", Buffer.from("small")))
        })
        const options = { ...connectOptions(portOf(server), fleet.ca, "dev-a"), maxPayload: 4096 }

        const session = await transportFor(dev).connect(options)
        const first = await session.receive()

        expect(first?.payload.toString()).toBe("small")
        await session.close()
        server.close()
    })

    it("GP-TM-54: a packet declaring megabytes ends the session before buffering", async () => {
        const server = await hostileBroker((socket) => {
            const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])
            socket.write(Buffer.concat([header, Buffer.alloc(1024)]))
        })
        const options = { ...connectOptions(portOf(server), fleet.ca, "dev-a"), maxPayload: 4096 }

        const session = await transportFor(dev).connect(options)
        const next = await session.receive()

        expect(next).toBeNull()
        expect(session.isOpen()).toBe(false)
        server.close()
    })

    it("GP-TM-17: a broker that stops answering pings loses the session", async () => {
        const server = await hostileBroker(() => undefined)
        const options = { ...connectOptions(portOf(server), fleet.ca, "dev-a"), keepAliveSec: 1 }

        const session = await transportFor(dev).connect(options)
        const next = await session.receive()

        expect(next).toBeNull()
        const late = session.publish("bulwark/dev-a/t", Buffer.from("x"), 1)
        await expect(late).rejects.toMatchObject({ code: "closed" })
        server.close()
    })
})
