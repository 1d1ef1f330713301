/**
 * `bulwark sim new|flash|lock|revoke`: the factory station of the simulated board. Creates
 * a device with release-key anchors burnt into OTP (GP-TM-01), writes images through the
 * debug port until the debug-disable fuse closes it (GP-TM-33), burns the lock fuses and
 * revokes key slots. Exit 0 ok, 1 refused, 2 bad usage or unreadable input (tools/args.ts).
 */

import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"

import { anchorDigest } from "../../boot/anchor"
import { ProfileError } from "../../boot/profile"
import { FlashError, OtpError } from "../../hal/errors"
import { OTP_COUNTER_MAX, OTP_KEY_SLOT_COUNT } from "../../hal/otp"
import { SimBoard, SimBoardError } from "../../sim/board"
import { SimCrypto } from "../../sim/crypto"
import {
    flag,
    flagList,
    intFlag,
    parseArgs,
    RefusedError,
    requireFlag,
    UsageError,
} from "../args"
import { registerCommands } from "../cli"
import { openBoard, printOk, readInput } from "../command-helpers"
import { readPublicKeyFile } from "../keyfile"

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..")
export const DEFAULT_PROFILE = resolve(PACKAGE_ROOT, "devs.config.json")

function readProfileJson(path: string): unknown {
    const text = readInput(path, "profile").toString("utf8")
    try {
        return JSON.parse(text)
    } catch {
        throw new UsageError(`profile ${path} is not JSON`)
    }
}

async function withBoard<T>(dir: string, work: (board: SimBoard) => Promise<T>): Promise<T> {
    const board = await openBoard(dir)
    try {
        return await work(board)
    } finally {
        board.close()
    }
}

async function simNew(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "class", "trust", "counter", "profile"], ["json"])
    const dir = resolve(requireFlag(args, "dir"))
    const deviceClass = requireFlag(args, "class")
    const trustFiles = flagList(args, "trust")
    if (trustFiles.length < 1) throw new UsageError("missing --trust")
    if (trustFiles.length > OTP_KEY_SLOT_COUNT)
        throw new UsageError(`at most ${OTP_KEY_SLOT_COUNT} --trust files (OTP key slots)`)
    const counter = intFlag(args, "counter", 0)
    if (counter > OTP_COUNTER_MAX) throw new UsageError(`--counter must be 0..${OTP_COUNTER_MAX}`)
    const profile = readProfileJson(resolve(flag(args, "profile") ?? DEFAULT_PROFILE))

    const crypto = new SimCrypto()
    const anchors = trustFiles.map((file) => anchorDigest(crypto, readPublicKeyFile(file).keys))

    let board: SimBoard
    try {
        board = await SimBoard.create(dir, {
            profile: profile,
            deviceClass: deviceClass,
            trust: anchors,
            counter: counter,
        })
    } catch (err) {
        if (err instanceof ProfileError || err instanceof SimBoardError || err instanceof OtpError)
            throw new UsageError(err.message)
        throw err
    }
    board.close()

    const hex = anchors.map((a) => a.toString("hex"))
    printOk(
        args,
        { dir: dir, deviceClass: board.profile.deviceClass, anchors: hex, counter: counter },
        `created ${dir}: class ${board.profile.deviceClass}, ${hex.length} key slot(s) burnt, ` +
            `counter ${counter}`
    )
    return 0
}

async function simFlash(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "slot", "image"], ["json"])
    const dir = requireFlag(args, "dir")
    const slot = requireFlag(args, "slot")
    if (slot !== "a" && slot !== "b") throw new UsageError("--slot must be a or b")
    const image = readInput(requireFlag(args, "image"), "image")
    const partition = "slot-" + slot

    await withBoard(dir, async (board) => {
        try {
            await board.debugFlash(partition, image)
        } catch (err) {
            if (err instanceof SimBoardError && err.check === "locked")
                throw new RefusedError("debug port is disabled by the OTP fuse", {
                    check: "debug-disabled",
                })
            if (err instanceof FlashError && err.code === "range")
                throw new UsageError(`image (${image.length} bytes) does not fit ${partition}`)
            throw err
        }
    })
    printOk(
        args,
        { dir: resolve(dir), slot: slot, partition: partition, bytes: image.length },
        `wrote ${image.length} bytes to ${partition} through the debug port`
    )
    return 0
}

async function simLock(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir"], ["json"])
    const dir = requireFlag(args, "dir")
    const locks = await withBoard(dir, async (board) => {
        await board.otp.burnLock("debug-disabled")
        await board.otp.burnLock("keys-locked")
        return board.otp.readLocks()
    })
    printOk(
        args,
        { dir: resolve(dir), locks: locks },
        "burnt the debug-disable and key-lock fuses (irreversible)"
    )
    return 0
}

async function simRevoke(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "slot"], ["json"])
    const dir = requireFlag(args, "dir")
    const raw = requireFlag(args, "slot")
    const slot = ["0", "1", "2"].indexOf(raw)
    if (slot < 0) throw new UsageError("--slot must be 0, 1 or 2")
    const state = await withBoard(dir, async (board) => {
        await board.otp.revokeKeySlot(slot)
        return board.otp.readKeySlot(slot)
    })
    const digest = state.digest ? state.digest.toString("hex") : null
    printOk(
        args,
        { dir: resolve(dir), slot: slot, revoked: state.revoked, digest: digest },
        `revoked OTP key slot ${slot} (irreversible)`
    )
    return 0
}

registerCommands([
    {
        words: ["sim", "new"],
        usage:
            "sim new --dir DEV --class CLASS --trust PUB [--trust PUB ...] [--counter N] " +
            "[--profile FILE] [--json]",
        summary: "create a simulated device with the release-key anchors burnt into OTP",
        run: simNew,
    },
    {
        words: ["sim", "flash"],
        usage: "sim flash --dir DEV --slot a|b --image IMAGE [--json]",
        summary: "factory write of an image through the debug port (refused once locked)",
        run: simFlash,
    },
    {
        words: ["sim", "lock"],
        usage: "sim lock --dir DEV [--json]",
        summary: "burn the debug-disable and key-lock fuses",
        run: simLock,
    },
    {
        words: ["sim", "revoke"],
        usage: "sim revoke --dir DEV --slot 0|1|2 [--json]",
        summary: "burn the revoke bit of an OTP key slot",
        run: simRevoke,
    },
])
