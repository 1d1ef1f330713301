/**
 * Fixtures of the suites that renew certificates over the network against a broker (the
 * embedded one in renewal-e2e.test.ts, Mosquitto in test/interop/): the app bundle, a
 * provisioned sim device with v1 whose profile lists the operator's key in
 * security.operatorKeys, a runner that waits until the device is connected, and readers of
 * the identity record. GP-TM-35.
 */

import { createPublicKey, X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { PARTITION_IDENTITY, readIdentity } from "../../src/identity"
import { SimBoard } from "../../sim/board"
import { DeviceHandle, startDevice } from "../../sim/runner"
import { testProfileJson } from "../../sim/testing"
import { buildAppBundle } from "../../tools/app-build"
import { provision } from "../../tools/provision"
import { BROKER_TRANSPORT, BROKER_UPDATE, keyA, makeImage } from "../ota/helpers"
import { Fleet, tempDir } from "./fixtures"

/** The uncompressed P-256 public key of a PEM key, hex, as security.operatorKeys lists it. */
export function rawPublic(keyPem: string): string {
    const jwk = createPublicKey(keyPem).export({ format: "jwk" })
    return "04" + Buffer.from(jwk.x as string, "base64url").toString("hex") +
        Buffer.from(jwk.y as string, "base64url").toString("hex")
}

/** A broker suite's device profile whose security.operatorKeys is `operatorKeys`. */
export function renewalProfile(operatorKeys: string[]) {
    return testProfileJson({
        slotSize: 262144,
        profile: {
            update: BROKER_UPDATE,
            transport: BROKER_TRANSPORT,
            security: { overrides: [], operatorKeys },
        },
    })
}

/** The app bundle the devices run, built into `work`. */
export async function renewalApp(work: string): Promise<Buffer> {
    return readFileSync((await buildAppBundle(undefined, join(work, "app.js"))).path)
}

export interface RenewalDevice {
    dir: string
    id: string
    /** Serial of the certificate provisioning issued. */
    serial: string
}

/**
 * A device provisioned by `fleet` with `app` as v1, operator keys `keys`, and a certificate
 * that ends in `days` days.
 */
export async function renewalDevice(
    fleet: Fleet,
    app: Buffer,
    keys: string[],
    days = 10
): Promise<RenewalDevice> {
    const dir = join(tempDir("bulwark-renew-dev-"), "dev")
    const board = await SimBoard.create(dir, { profile: renewalProfile(keys), trust: [keyA.anchor],
        counter: 1 })
    await board.debugFlash("slot-a", await makeImage({ version: "1.0.0", counter: 1, payload: app }))
    board.close()
    const result = await provision({ devDir: dir, caDir: fleet.caDir, iterations: 1000,
        validity: { days } })
    return { dir, id: result.deviceId, serial: result.certSerial }
}

/**
 * Runs the device in `dir` against the broker on 127.0.0.1:`port` (listed in `running`
 * so the suite can stop it) and resolves once its app is connected.
 */
export async function runConnected(
    dir: string,
    port: number,
    running: DeviceHandle[]
): Promise<DeviceHandle> {
    const device = await startDevice(dir, { host: "127.0.0.1", port })
    running.push(device)
    await device.waitFor((d) => d.app()?.connected === true, 20000, "connected")
    return device
}

/** Stops a device `runConnected` started and takes it off `running`. */
export async function stopDevice(device: DeviceHandle, running: DeviceHandle[]): Promise<void> {
    await device.stop()
    running.splice(running.indexOf(device), 1)
}

export async function onBoard<T>(dir: string, read: (board: SimBoard) => Promise<T>): Promise<T> {
    const board = await SimBoard.open(dir)
    try {
        return await read(board)
    } finally {
        board.close()
    }
}

export async function storedIdentity(dir: string) {
    return onBoard(dir, (b) => readIdentity(b.crypto, b.secureElement,
        b.flash.partition(PARTITION_IDENTITY)))
}

export async function identityBytes(dir: string): Promise<Buffer> {
    return onBoard(dir, async (b) => {
        const p = b.flash.partition(PARTITION_IDENTITY)
        return await p.read(0, p.size)
    })
}

/** The secure-element identity key as PEM (sim-only TLS-engine path), for raw TLS probes. */
export async function identityKeyPem(dir: string): Promise<string> {
    return onBoard(dir, async (b) => b.secureElement.tlsPrivateKeyPem(SE_SLOT_IDENTITY))
}

/** A certificate's serial in the registry's canonical form (lower case, no leading zeros). */
export function serialOf(pem: string): string {
    return new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, "")
}

export function bare(serial: string): string {
    return serial.toLowerCase().replace(/^0+/, "")
}
