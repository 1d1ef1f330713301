/**
 * Device-only checks for the VM (test/vectors/device-hal.json): the DeviceScript board, its
 * crypto refusals, the clock and sealed settings on the runtime's real settings service.
 * Each probe returns plain data or throws, so the shared codec renders it like any vector.
 */

import * as ds from "@devicescript/core"
import { slhDsaVerify } from "../../../boot/slhdsa"
import { createDeviceBoard, requireBoardCapability } from "../../../hal/devicescript/board"
import { DeviceClock, DeviceRng } from "../../../hal/devicescript/clock"
import { DeviceCrypto } from "../../../hal/devicescript/crypto"
import { SealedSettings, SealingKeySource } from "../../../hal/devicescript/sealed-settings"
import { DeviceSettingsBackend } from "../../../hal/devicescript/settings-backend"

class FixedKeySource implements SealingKeySource {
    async sealingKey(): Promise<Buffer> {
        const key = Buffer.alloc(32)
        for (let i = 0; i < 32; i++) key[i] = 0x40 + i
        return key
    }
}

function sealed(): SealedSettings {
    return new SealedSettings(new DeviceCrypto(), new FixedKeySource(), new DeviceSettingsBackend())
}

/** Which board members exist for a profile board, in the VM. */
export function boardMembers(target: string): any {
    const board = createDeviceBoard(target)
    return {
        target: board.target,
        device: board.device.name,
        mqtt: board.mqtt !== undefined,
        settings: board.settings !== undefined,
        flash: board.flash !== undefined,
        otp: board.otp !== undefined,
        secureElement: board.secureElement !== undefined,
        watchdog: board.watchdog !== undefined,
        reset: board.reset !== undefined,
        rngCryptographic: board.rng.cryptographic,
    }
}

export function requireOnBoard(target: string, capability: string): void {
    requireBoardCapability(createDeviceBoard(target), capability)
}

export async function verifyRefuses(algorithm: string): Promise<boolean> {
    const crypto = new DeviceCrypto()
    const key = Buffer.alloc(32)
    return await crypto.verify(algorithm as any, key, Buffer.alloc(1), Buffer.alloc(64))
}

export function verifierList(): string[] {
    return new DeviceCrypto().verifiers()
}

/** What the device entry's board can verify: it hands the portable verifier in. */
export function boardVerifiers(): string[] {
    return createDeviceBoard("esp32s3", { slhDsa: slhDsaVerify }).crypto.verifiers()
}

export function sealWithAad(aad: Buffer): Buffer {
    return new DeviceCrypto().aeadSeal(Buffer.alloc(32), Buffer.alloc(13), aad, Buffer.from("x"))
}

/** SHA-256 through createSha256 over `parts`, then a second digest() that must fail. */
export function streamedSha256(parts: Buffer[]): Buffer {
    const h = new DeviceCrypto().createSha256()
    for (let i = 0; i < parts.length; i++) h.update(parts[i])
    return h.digest()
}

export function digestTwice(): Buffer {
    const h = new DeviceCrypto().createSha256()
    h.digest()
    return h.digest()
}

export function wallClock(setTo: number): any {
    const clock = new DeviceClock()
    const before = clock.wallTime()
    clock.setWallTime(setTo)
    return { before: before, after: clock.wallTime() }
}

export function randomLength(n: number): number {
    return new DeviceRng(true).bytes(n).length
}

export async function settingsRoundTrip(name: string, value: Buffer): Promise<Buffer> {
    const store = sealed()
    await store.write(name, value)
    return await store.read(name)
}

/** True when the raw record contains the plaintext anywhere (it must not). */
export async function rawRecordShowsValue(name: string, value: Buffer): Promise<boolean> {
    await sealed().write(name, value)
    const raw = await new DeviceSettingsBackend().get(name)
    const text = raw.toString("hex")
    return text.indexOf(value.toString("hex")) >= 0
}

/** Writes `value`, flips one stored bit the way a USB reader could, then reads it back. */
export async function settingsAfterTamper(
    name: string,
    value: Buffer,
    at: number
): Promise<Buffer> {
    const store = sealed()
    await store.write(name, value)
    const backend = new DeviceSettingsBackend()
    const raw = await backend.get(name)
    raw[at] = raw[at] ^ 1
    await backend.set(name, raw)
    return await store.read(name)
}

export async function settingsAbsent(name: string): Promise<Buffer> {
    const store = sealed()
    await store.remove(name)
    return await store.read(name)
}

export function settingsWithoutKeySource(): boolean {
    return new SealedSettings(new DeviceCrypto(), undefined, new DeviceSettingsBackend()) !== null
}

/** A raw record past 232 bytes is refused before it reaches the runtime (which panics). */
export async function rawOversize(keyLength: number, valueLength: number): Promise<boolean> {
    let key = ""
    for (let i = 0; i < keyLength; i++) key = key + "k"
    await new DeviceSettingsBackend().set(key, Buffer.alloc(valueLength))
    await ds.sleep(0)
    return true
}
