/**
 * Test fixtures of the update suites: release keys, small signed images, a provisioned-less
 * test board with v1 in slot a, one boot of the stub, and an in-memory link that stands in
 * for the MQTT session between the update agent and a publisher serving chunks.
 */

import { randomBytes } from "node:crypto"

import { runBootStub, BootDecision } from "../../boot/stub"
import { PowerLoss } from "../../hal/errors"
import { SimBoard } from "../../sim/board"
import { RebootSignal } from "../../sim/power"
import { makeTestBoard } from "../../sim/testing"
import { generateReleaseKey, ReleasePrivateKey } from "../../tools/keyfile"
import { buildSignedImage } from "../../tools/signer"
import { AgentIo, UpdateAgent } from "../../ota/agent"
import {
    decodeRangeRequest,
    decodeRequest,
    decodeStatus,
    decodeTableRequest,
    encodeChunk,
    encodeTable,
    rangeChunks,
    AgentStatus,
    ChunkRequest,
    RANGE_REQUEST_MAGIC,
} from "../../ota/agent-wire"
import { Offer } from "../../ota/offer"
import { chunkHashes, offerForImage, signOffer } from "../../ota/host/offer-sign"
import { MqttMessage } from "../../hal/mqtt"
import { FleetCa } from "../../tools/ca"
import { connectOptions, operatorCredentials, transportFor } from "../transport/fixtures"

export const CLASS = "bulwark-test"
export const DEVICE_ID = "dev-test"

export const keyA: ReleasePrivateKey = generateReleaseKey("p256")
export const keyB: ReleasePrivateKey = generateReleaseKey("ed25519")
export const keyStranger: ReleasePrivateKey = generateReleaseKey("p256")

export const UPDATE = {
    automatic: true,
    windowStartHour: 0,
    windowEndHour: 24,
    chunkSize: 1024,
    confirmTimeoutMs: 5000,
}

/** The update section of the tests that run devices against the broker (cli, e2e). */
export const BROKER_UPDATE = {
    automatic: true,
    windowStartHour: 0,
    windowEndHour: 24,
    chunkSize: 4096,
    confirmTimeoutMs: 1500,
}

/** The transport section of the broker suites' profile: quick reconnects on loopback. */
export const BROKER_TRANSPORT = {
    brokerHost: "localhost",
    brokerPort: 8883,
    keepAliveSec: 30,
    maxPayload: 16384,
    queueLimit: 100,
    backoffMinMs: 100,
    backoffMaxMs: 1000,
}

export interface ImageSpec {
    version: string
    counter: number
    payload?: Buffer
    key?: ReleasePrivateKey
    deviceClass?: string
}

export async function makeImage(spec: ImageSpec): Promise<Buffer> {
    return await buildSignedImage({
        payload: spec.payload ?? randomBytes(6000),
        version: spec.version,
        counter: spec.counter,
        deviceClass: spec.deviceClass ?? CLASS,
        key: spec.key ?? keyA,
    })
}

export interface DeviceOptions {
    v1?: Buffer
    update?: Partial<typeof UPDATE>
    slotSize?: number
    counter?: number
    wallTime?: number | null
    seed?: number
}

/** A board trusting keyA (slot 0) and keyB (slot 1), with v1 flashed into slot a. */
export async function makeDevice(options: DeviceOptions = {}): Promise<SimBoard> {
    const board = await makeTestBoard({
        trust: [keyA.anchor, keyB.anchor],
        counter: options.counter ?? 1,
        slotSize: options.slotSize ?? 32768,
        wallTime: options.wallTime,
        seed: options.seed,
        profile: { update: { ...UPDATE, ...(options.update ?? {}) } },
    })
    await board.debugFlash("slot-a", options.v1 ?? (await makeImage({ version: "1.0.0", counter: 1 })))
    return board
}

export async function boot(board: SimBoard): Promise<BootDecision> {
    return await runBootStub(
        board,
        {
            deviceClass: board.profile.deviceClass,
            trialAttempts: board.profile.boot.trialAttempts,
            signaturePolicy: board.profile.boot.signaturePolicy,
        },
        false
    )
}

/** Collects what the agent publishes, as the broker would carry it. */
export class Link implements AgentIo {
    statuses: AgentStatus[] = []
    requests: Buffer[] = []
    /** Publishes on the request topic so far (each costs the device a "publishes" token). */
    requestPublishes = 0

    async publish(suffix: string, payload: Buffer, _reliable: boolean): Promise<void> {
        if (suffix === "ota/status") this.statuses.push(decodeStatus(payload))
        else if (suffix === "ota/request") {
            this.requests.push(payload)
            this.requestPublishes++
        } else throw new Error("unexpected topic " + suffix)
    }

    states(): string[] {
        return this.statuses.map((s) => s.state + (s.check ? ":" + s.check : ""))
    }

    last(): AgentStatus {
        return this.statuses[this.statuses.length - 1]
    }
}

export function newAgent(board: SimBoard, decision: BootDecision, link: Link): UpdateAgent {
    return new UpdateAgent(
        board,
        {
            deviceId: DEVICE_ID,
            deviceClass: board.profile.deviceClass,
            update: board.profile.update,
            signaturePolicy: board.profile.boot.signaturePolicy,
            measured: decision.measured!,
        },
        link
    )
}

export async function offerFor(
    image: Buffer,
    sequence: number,
    key: ReleasePrivateKey = keyA,
    over: Partial<Offer> = {}
): Promise<Buffer> {
    const offer = await offerForImage(image, { sequence: sequence })
    return await signOffer({ ...offer, ...over }, key)
}

export interface ServeOptions {
    /** Changes the bytes served for one chunk (tampering in transit). */
    alter?: (offset: number, data: Buffer) => Buffer
    /** Chunk size of the offer's chunk table: table requests are answered with it. */
    tableChunkSize?: number
    /** Changes the table served (tampering in transit). */
    alterTable?: (hashes: Buffer) => Buffer
    /** Stops (as "idle") after serving this many chunks. */
    chunks?: number
}

/** The chunks a chunk or range request asks for, as the publisher reads them. */
export function requestedChunks(request: Buffer, imageSize: number): ChunkRequest[] {
    if (request.subarray(0, 4).toString("latin1") !== RANGE_REQUEST_MAGIC)
        return [decodeRequest(request)]
    return rangeChunks(decodeRangeRequest(request), imageSize)
}

/** How a serving loop ended. */
export type RunEnd = "idle" | "reboot" | "power-loss"

/**
 * Answers the agent's chunk and range requests from `image` until it asks for nothing more
 * (or `options.chunks` were served). Ends with "reboot" when the agent reboots into the
 * update, "power-loss" when a cut ends the run.
 */
export async function serve(
    agent: UpdateAgent,
    link: Link,
    image: Buffer,
    options: ServeOptions = {}
): Promise<RunEnd> {
    let served = 0
    try {
        for (let rounds = 0; rounds < 100000; rounds++) {
            const next = link.requests.shift()
            if (next === undefined) return "idle"
            const tableFor = decodeTableRequest(next)
            if (tableFor >= 0 && options.tableChunkSize !== undefined) {
                let hashes = chunkHashes(image, options.tableChunkSize)
                if (options.alterTable) hashes = options.alterTable(Buffer.from(hashes))
                const chunkSize = options.tableChunkSize
                await agent.handleChunk(encodeTable({ sequence: tableFor, chunkSize, hashes }))
                continue
            }
            for (const request of requestedChunks(next, image.length)) {
                if (served === options.chunks) return "idle"
                let data = image.subarray(request.offset, request.offset + request.length)
                if (options.alter) data = options.alter(request.offset, Buffer.from(data))
                await agent.handleChunk(
                    encodeChunk({ sequence: request.sequence, offset: request.offset, data: data })
                )
                served++
            }
        }
        throw new Error("serve: no end")
    } catch (err) {
        return endOf(err)
    }
}

export function endOf(err: unknown): RunEnd {
    if (err instanceof RebootSignal) return "reboot"
    if (err instanceof PowerLoss) return "power-loss"
    throw err
}

/** Runs a step of the agent and turns a reboot or a power cut into its RunEnd. */
export async function step(action: () => Promise<void>): Promise<RunEnd> {
    try {
        await action()
        return "idle"
    } catch (err) {
        return endOf(err)
    }
}

/**
 * An operator session on the broker at `port` that keeps every message on `topic` (MQTT
 * wildcards allowed) until `stop()`, which returns them in arrival order.
 */
export async function watchTopic(
    ca: FleetCa,
    port: number,
    topic: string
): Promise<{ stop: () => Promise<MqttMessage[]> }> {
    const creds = await operatorCredentials(ca, "observer")
    const session = await transportFor(creds).connect(connectOptions(port, ca, creds.id))
    await session.subscribe(topic, 0)
    const seen: MqttMessage[] = []
    const loop = (async () => {
        for (let m = await session.receive(); m !== null; m = await session.receive()) seen.push(m)
    })()
    return {
        stop: async () => {
            await session.close()
            await loop
            return seen
        },
    }
}
