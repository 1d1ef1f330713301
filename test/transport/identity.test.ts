/**
 * The identity record on flash: two signed copies with sequence numbers, so a power cut at
 * any flash operation of a rewrite leaves the old or the new identity whole, and bytes
 * written by anyone without the secure element's key are ignored (GP-TM-21, GP-TM-35).
 */

import { afterAll, describe, expect, it } from "vitest"
import { PowerLoss } from "../../hal/errors"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { SimBoard } from "../../sim/board"
import { TearMode } from "../../sim/flash"
import { cleanupTestBoards, makeTestBoard } from "../../sim/testing"
import {
    DeviceIdentity,
    deviceIdFromPublicKey,
    formatSetupCode,
    PARTITION_IDENTITY,
    readIdentity,
    writeIdentity,
} from "../../src/identity"

afterAll(() => cleanupTestBoards())

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

function identity(deviceId: string, marker: string): DeviceIdentity {
    return {
        deviceId,
        certificatePem: PEM.replace("MIIB", "MIIB" + marker),
        caPem: PEM,
        setupCode: {
            alg: "pbkdf2-hmac-sha256",
            iterations: 100000,
            salt: "00".repeat(16),
            hash: "11".repeat(32),
        },
    }
}

async function provisioned(): Promise<{ board: SimBoard; id: string }> {
    const board = await makeTestBoard()
    const pub = await board.secureElement.generateKey(SE_SLOT_IDENTITY)
    return { board, id: deviceIdFromPublicKey(board.crypto, pub) }
}

async function read(board: SimBoard): Promise<DeviceIdentity | null> {
    const partition = board.flash.partition(PARTITION_IDENTITY)
    return readIdentity(board.crypto, board.secureElement, partition)
}

describe("identity record (GP-TM-21, GP-TM-35)", () => {
    it("GP-TM-21: without an identity key or record a device reads as unprovisioned", async () => {
        const board = await makeTestBoard()

        expect(await read(board)).toBeNull()
        await board.secureElement.generateKey(SE_SLOT_IDENTITY)
        expect(await read(board)).toBeNull()
        board.close()
    })

    it("GP-TM-21: the default device id is dev- and 12 hex digits of SHA-256(key)", async () => {
        const { board, id } = await provisioned()

        const pub = await board.secureElement.publicKey(SE_SLOT_IDENTITY)

        expect(id).toBe("dev-" + board.crypto.sha256([pub]).toString("hex").slice(0, 12))
        board.close()
    })

    it("GP-TM-35: a power cut at any flash op of a rewrite keeps old or new record", async () => {
        const tears: TearMode[] = ["none", "prefix", "garbage"]
        for (const tear of tears) {
            for (let cutAfter = 0; cutAfter < 2; cutAfter++) {
                let { board, id } = await provisioned()
                const part = () => board.flash.partition(PARTITION_IDENTITY)
                await writeIdentity(board.crypto, board.secureElement, part(), identity(id, "old"))

                board.flash.armPowerCut(cutAfter, tear, 7 + cutAfter)
                const se = board.secureElement
                const write = writeIdentity(board.crypto, se, part(), identity(id, "new"))
                await expect(write).rejects.toBeInstanceOf(PowerLoss)
                board = await board.powerCycle()

                const after = await read(board)
                expect([identity(id, "old"), identity(id, "new")]).toContainEqual(after)
                const third = identity(id, "third")
                await writeIdentity(board.crypto, board.secureElement, part(), third)
                expect(await read(board)).toEqual(third)
                board.close()
            }
        }
    })

    it("GP-TM-35: a record altered on flash, or signed by another key, is ignored", async () => {
        const { board, id } = await provisioned()
        const part = board.flash.partition(PARTITION_IDENTITY)
        await writeIdentity(board.crypto, board.secureElement, part, identity(id, "good"))
        const other = await provisioned()
        const otherPart = other.board.flash.partition(PARTITION_IDENTITY)
        const evil = identity(id, "evil")
        await writeIdentity(other.board.crypto, other.board.secureElement, otherPart, evil)
        const forged = await otherPart.read(0, part.size)

        await board.debugFlash(PARTITION_IDENTITY, forged)

        expect(await read(board)).toBeNull()
        board.close()
        other.board.close()
    })

    it("GP-TM-35: flipping one byte of the stored record makes that copy invalid", async () => {
        let { board, id } = await provisioned()
        const part = board.flash.partition(PARTITION_IDENTITY)
        await writeIdentity(board.crypto, board.secureElement, part, identity(id, "one"))
        const image = await part.read(0, part.size)
        image[40] ^= 0x01

        await board.debugFlash(PARTITION_IDENTITY, image)

        expect(await read(board)).toBeNull()
        board.close()
    })

    it("GP-TM-09: a setup code is 4x4 label-safe symbols from 80 random bits", () => {
        expect(formatSetupCode(Buffer.alloc(10, 0))).toBe("0000-0000-0000-0000")
        expect(formatSetupCode(Buffer.alloc(10, 0xff))).toBe("ZZZZ-ZZZZ-ZZZZ-ZZZZ")
        const pattern = Buffer.from("0842108421084210842a", "hex")
        expect(formatSetupCode(pattern)).toBe("1111-1111-1111-111A")
    })
})
