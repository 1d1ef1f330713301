/**
 * Raw DeviceScript settings as a SettingsBackend for sealed-settings.ts (GP-TM-32). Values are
 * bytes, not JSON, and a record larger than the runtime accepts is refused here: past 232
 * bytes (key, terminator, value) the runtime panics instead of failing the write.
 */

import * as ds from "@devicescript/core"
import { settings } from "@devicescript/settings"
import { SETTING_RECORD_MAX, SettingsBackend, StorageError } from "./sealed-settings"

function checkRecord(key: string, value: Buffer): void {
    if (key.length < 1 || key.length + 1 + value.length > SETTING_RECORD_MAX)
        throw new StorageError("size", "setting record exceeds 232 bytes")
}

export class DeviceSettingsBackend implements SettingsBackend {
    async get(key: string): Promise<Buffer | null> {
        const report = await ds.actionReport(
            settings,
            "get",
            async () => await settings.get(key),
            (packet) => packet.decode()[0] === key
        )
        const fields = report.decode()
        const value = fields[1] as Buffer
        if (!value || value.length === 0) return null
        return value
    }

    async set(key: string, value: Buffer): Promise<void> {
        checkRecord(key, value)
        await settings.set(key, value)
    }

    async remove(key: string): Promise<void> {
        await settings.delete(key)
    }
}
