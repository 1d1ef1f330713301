/**
 * The publisher's counterpart in its own tests: a fleet with the embedded broker and an
 * operator, and a device on that broker made of a host key (test/ota/status-signing.ts)
 * instead of a sim board, for tests that script each of the device's messages by hand.
 */

import { join } from "node:path"

import { expect } from "vitest"

import { MqttMessage, MqttSession } from "../../hal/mqtt"
import { OperatorCredentials } from "../../ota/host/publisher"
import { RunningBroker, startBroker } from "../../sim/broker"
import { issueOperatorCertificate } from "../../tools/ca"
import { readOperator } from "../../tools/commands/ota"
import { connectOptions, deviceCredentials, Fleet, makeFleet, tempDir } from "../transport/fixtures"
import { transportFor } from "../transport/fixtures"
import { HostSigner, hostSigner } from "./status-signing"

export interface OperatorBroker {
    fleet: Fleet
    broker: RunningBroker
    /** Operator "release" of the fleet. */
    operator: OperatorCredentials
}

/** A new fleet named `name`, its embedded broker on a free loopback port, and an operator. */
export async function operatorBroker(name: string): Promise<OperatorBroker> {
    const fleet = await makeFleet(name)
    const dir = join(tempDir("bulwark-ota-op-"), "operator")
    await issueOperatorCertificate(fleet.ca, "release", dir)
    const broker = await startBroker({ caDir: fleet.caDir, port: 0 })
    return { fleet, broker, operator: readOperator(dir) }
}

export interface FakeDevice {
    session: MqttSession
    signer: HostSigner
    /** The next message to the device; with `suffix`, it must be on bulwark/<id>/<suffix>. */
    next: (suffix?: string) => Promise<MqttMessage>
}

/** Device `id` of the fleet on `ob`'s broker, subscribed to bulwark/<id>/<suffix> of each. */
export async function fakeDevice(
    ob: OperatorBroker,
    id: string,
    subscriptions: { suffix: string; qos: 0 | 1 }[],
    maxPayload?: number
): Promise<FakeDevice> {
    const creds = await deviceCredentials(ob.fleet.ca, id)
    const options = connectOptions(ob.broker.port, ob.fleet.ca, id)
    const session = await transportFor(creds).connect(
        maxPayload === undefined ? options : { ...options, maxPayload }
    )
    for (const s of subscriptions) await session.subscribe("bulwark/" + id + "/" + s.suffix, s.qos)
    const next = async (suffix?: string): Promise<MqttMessage> => {
        const m = await session.receive()
        if (m === null) throw new Error("session closed")
        if (suffix !== undefined) expect(m.topic).toBe("bulwark/" + id + "/" + suffix)
        return m
    }
    return { session, signer: hostSigner(creds.keyPem, id), next }
}
