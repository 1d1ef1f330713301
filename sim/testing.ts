/**
 * Test helpers for every suite that needs a board: `makeTestBoard` creates a simulated
 * device in a temporary directory with a small profile (64 KiB slots by default) so power
 * cut sweeps stay fast. Host-only; the profile is a variant of devs.config.json.
 */

import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SimBoard, SimBoardOptions } from "./board"

export interface TestBoardOptions extends SimBoardOptions {
    /** Size of slot-a and slot-b (default 64 KiB; a multiple of 4 KiB). */
    slotSize?: number
    /** Sizes of other partitions by name, e.g. { audit: 32768 }. */
    partitionSizes?: Record<string, number>
    deviceClass?: string
    /** Anchor digests burnt into OTP key slots 0..n-1 (default none). */
    trust?: Buffer[]
    counter?: number
    /** Replaces whole top-level sections of the profile, e.g. { boot: {...} }. */
    profile?: Record<string, unknown>
    /** Device directory (default: a new temporary directory, removed by cleanupTestBoards). */
    dir?: string
}

const SECTOR = 4096
const created: string[] = []

/** The small profile of test boards, as devs.config.json JSON. */
export function testProfileJson(options: TestBoardOptions = {}): Record<string, unknown> {
    const slot = options.slotSize ?? 65536
    const sizes: Record<string, number> = {
        "boot-state": 2 * SECTOR,
        "slot-a": slot,
        "slot-b": slot,
        "ota-state": 2 * SECTOR,
        audit: 4 * SECTOR,
        prefs: 2 * SECTOR,
        "secure-settings": 2 * SECTOR,
        identity: 2 * SECTOR,
        ...(options.partitionSizes ?? {}),
    }
    const base: Record<string, unknown> = {
        profileVersion: 1,
        board: "sim",
        deviceClass: options.deviceClass ?? "bulwark-test",
        flash: {
            sectorSize: SECTOR,
            writeAlign: 4,
            partitions: Object.keys(sizes).map((name) => ({ name: name, size: sizes[name] })),
        },
        boot: { trialAttempts: 3, signaturePolicy: "classical" },
        transport: {
            brokerHost: "localhost",
            brokerPort: 8883,
            keepAliveSec: 30,
            maxPayload: 16384,
            queueLimit: 100,
            backoffMinMs: 500,
            backoffMaxMs: 60000,
        },
        update: {
            automatic: true,
            windowStartHour: 0,
            windowEndHour: 24,
            chunkSize: 4096,
            confirmTimeoutMs: 60000,
        },
        rateLimits: {
            commands: { ratePerSec: 10, burst: 20 },
            publishes: { ratePerSec: 20, burst: 50 },
            logins: { ratePerSec: 1, burst: 3 },
            updates: { ratePerSec: 1, burst: 2 },
        },
        services: { console: false, debugPort: false },
        security: { overrides: [] },
    }
    return { ...base, ...(options.profile ?? {}) }
}

/** A new test board, powered on, with a virtual clock unless `clock: "real"`. */
export async function makeTestBoard(options: TestBoardOptions = {}): Promise<SimBoard> {
    let dir = options.dir
    if (dir === undefined) {
        dir = mkdtempSync(join(tmpdir(), "bulwark-board-"))
        created.push(dir)
    }
    return SimBoard.create(
        dir,
        {
            profile: testProfileJson(options),
            trust: options.trust ?? [],
            counter: options.counter ?? 0,
        },
        options
    )
}

/** Removes the temporary directories of every test board made so far (call in afterAll). */
export function cleanupTestBoards(): void {
    for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true })
}
