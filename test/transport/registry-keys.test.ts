/**
 * The fleet registry keeps each device's identity public key (hex, 65 bytes uncompressed)
 * beside its SHA-256, written at provisioning and at renewal, for the publisher to verify
 * signed status reports with (docs/update.md; GP-TM-41). Registries written before the key
 * field stay readable: such a device has no key until its next renewal records it.
 */

import { createHash } from "node:crypto"

import { afterAll, beforeAll, describe, expect, it } from "vitest"

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import { RefusedError, UsageError } from "../../tools/args"
import { loadCa } from "../../tools/ca"
import { statusKeys } from "../../tools/commands/ota"
import { provision, readRegistry, registryDeviceKeys, renew, renewRegistered, writeRegistry } from "../../tools/provision"
import { Fleet, makeFleet, removeTempDirs } from "./fixtures"

let fleet: Fleet

beforeAll(async () => {
    fleet = await makeFleet("Registry keys fleet")
})

afterAll(() => {
    cleanupTestBoards()
    removeTempDirs()
})

async function provisioned(): Promise<{ dir: string; id: string; publicKey: Buffer }> {
    const fresh = await makeTestBoard()
    fresh.close()
    const { deviceId } = await provision({ devDir: fresh.dir, caDir: fleet.caDir, iterations: 1000 })
    const board = await SimBoard.open(fresh.dir)
    const publicKey = await board.secureElement.publicKey(SE_SLOT_IDENTITY)
    board.close()
    return { dir: fresh.dir, id: deviceId, publicKey }
}

function stripKey(id: string): void {
    const registry = readRegistry(fleet.caDir)
    delete registry.devices.find((d) => d.id === id)!.publicKey
    writeRegistry(fleet.caDir, registry)
}

describe("identity public keys in the fleet registry", () => {
    it("GP-TM-41: provisioning records the key; the registry round trip gives it back", async () => {
        const { id, publicKey } = await provisioned()
        const entry = readRegistry(fleet.caDir).devices.find((d) => d.id === id)!
        expect(entry.publicKey).toBe(publicKey.toString("hex"))
        expect(entry.publicKey).toMatch(/^04[0-9a-f]{128}$/)
        expect(createHash("sha256").update(publicKey).digest("hex")).toBe(entry.publicKeySha256)
        const { keys, missing } = registryDeviceKeys(readRegistry(fleet.caDir), [id, "dev-unknown"])
        expect(keys[id]).toEqual(publicKey)
        expect(missing).toEqual(["dev-unknown"])
    })

    it("GP-TM-41: an old registry entry without the key reads, has no key, and a renewal records it", async () => {
        const { dir, id, publicKey } = await provisioned()
        stripKey(id)
        expect(registryDeviceKeys(readRegistry(fleet.caDir), [id])).toEqual({ keys: {}, missing: [id] })
        expect(() => statusKeys(fleet.caDir, [id], false)).toThrow(UsageError)
        expect(() => statusKeys(fleet.caDir, [id], false)).toThrow(id)
        expect(statusKeys(fleet.caDir, [id], true)).toEqual({})

        await renew(dir, fleet.caDir)
        expect(registryDeviceKeys(readRegistry(fleet.caDir), [id]).keys[id]).toEqual(publicKey)
    })

    it("GP-TM-41: the network renewal's registry step learns the key only when it matches publicKeySha256", async () => {
        const { id, publicKey } = await provisioned()
        const other = await provisioned()
        stripKey(id)
        const ca = await loadCa(fleet.caDir)
        const registry = readRegistry(fleet.caDir)
        await expect(renewRegistered(ca, registry, id, other.publicKey)).rejects.toThrow(RefusedError)
        expect(registry.devices.find((d) => d.id === id)!.publicKey).toBeUndefined()
        await renewRegistered(ca, registry, id, publicKey)
        expect(registry.devices.find((d) => d.id === id)!.publicKey).toBe(publicKey.toString("hex"))
    })

    it("GP-TM-41: a stored key that does not match its publicKeySha256 is refused as bad usage", async () => {
        const { id } = await provisioned()
        const other = await provisioned()
        const registry = readRegistry(fleet.caDir)
        registry.devices.find((d) => d.id === id)!.publicKey = other.publicKey.toString("hex")
        expect(() => registryDeviceKeys(registry, [id])).toThrow(/does not match/)
    })
})
