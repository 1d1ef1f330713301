/**
 * Sealed settings (hal/devicescript/sealed-settings.ts) on Node with a table for the runtime's
 * settings: nothing is stored in clear, and an attacker who can read and write settings over
 * USB can neither read a value, alter it, nor move it to another name (GP-TM-32, GP-TM-35).
 * The VM runs the same class on DeviceScript's settings service (test/vectors/device-hal.json).
 */

import { describe, expect, it } from "vitest"
import { UnsupportedError } from "../../hal/errors"
import {
    SealedSettings,
    SettingsBackend,
    StorageError,
} from "../../hal/devicescript/sealed-settings"
import { SimCrypto } from "../../sim/crypto"

class TableBackend implements SettingsBackend {
    readonly table = new Map<string, Buffer>()
    async get(key: string) {
        return this.table.get(key) ?? null
    }
    async set(key: string, value: Buffer) {
        this.table.set(key, Buffer.from(value))
    }
    async remove(key: string) {
        this.table.delete(key)
    }
}

const keySource = (byte: number) => ({ sealingKey: async () => Buffer.alloc(32, byte) })
const secret = Buffer.from("owner-password-Q7v!x2")

describe("sealed settings", () => {
    it("GP-TM-35: refuse to exist without a sealing key kept outside settings", () => {
        const open = () => new SealedSettings(new SimCrypto(), undefined, new TableBackend())

        expect(open).toThrow(UnsupportedError)
    })

    it("GP-TM-32: store no byte sequence of the value in clear", async () => {
        const backend = new TableBackend()
        const store = new SealedSettings(new SimCrypto(), keySource(7), backend)

        await store.write("owner-pw", secret)

        const raw = backend.table.get("owner-pw")!
        expect(raw.includes(secret.subarray(0, 4))).toBe(false)
        expect(raw.length).toBe(secret.length + 30)
        expect(await store.read("owner-pw")).toEqual(secret)
    })

    it("GP-TM-32: an attacker's edit of the stored record is refused on read", async () => {
        const backend = new TableBackend()
        const store = new SealedSettings(new SimCrypto(), keySource(7), backend)
        await store.write("owner-pw", secret)

        for (let i = 0; i < secret.length + 30; i++) {
            const raw = Buffer.from(backend.table.get("owner-pw")!)
            raw[i] ^= 0x20
            const edited = new TableBackend()
            edited.table.set("owner-pw", raw)
            const reader = new SealedSettings(new SimCrypto(), keySource(7), edited)

            await expect(reader.read("owner-pw")).rejects.toThrow(StorageError)
        }
    })

    it("GP-TM-32: a record copied under another name does not open there", async () => {
        const backend = new TableBackend()
        const store = new SealedSettings(new SimCrypto(), keySource(7), backend)
        await store.write("owner-pw", secret)

        backend.table.set("wifi-pw", backend.table.get("owner-pw")!)

        await expect(store.read("wifi-pw")).rejects.toMatchObject({ code: "auth" })
    })

    it("GP-TM-35: a record from another device (another sealing key) does not open", async () => {
        const backend = new TableBackend()
        await new SealedSettings(new SimCrypto(), keySource(1), backend).write("owner-pw", secret)

        const other = new SealedSettings(new SimCrypto(), keySource(2), backend)

        await expect(other.read("owner-pw")).rejects.toMatchObject({ code: "auth" })
    })

    it("refuses a value that would not fit the runtime's 232-byte record", async () => {
        const store = new SealedSettings(new SimCrypto(), keySource(7), new TableBackend())

        const tooLarge = store.write("owner-pw", Buffer.alloc(200))

        await expect(tooLarge).rejects.toMatchObject({ code: "size" })
        await expect(store.write("owner-pw", Buffer.alloc(193))).resolves.toBeUndefined()
    })

    it("reads an absent or removed setting as null", async () => {
        const store = new SealedSettings(new SimCrypto(), keySource(7), new TableBackend())
        await store.write("owner-pw", secret)

        await store.remove("owner-pw")

        expect(await store.read("owner-pw")).toBeNull()
    })
})
