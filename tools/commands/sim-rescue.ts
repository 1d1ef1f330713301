/**
 * `bulwark sim rescue --dir DEV --image IMAGE [--hold-button] [--json]` (docs/boot.md,
 * "Recovery"; GP-TM-16): the signed rescue path of boot/rescue.ts on a simulated board in
 * recovery, locked or not. --hold-button powers it on with the button held (physical
 * presence). Exit 0 rescued, 1 refused by a check (JSON `check`), 2 bad usage or unreadable
 * input, an image too large for slot a included.
 */

import { resolve } from "node:path"

import { RescueError, rescue } from "../../boot/rescue"
import { EXIT_OK, hasFlag, parseArgs, RefusedError, requireFlag, UsageError } from "../args"
import { registerCommands } from "../cli"
import { noPositional, openBoard, printOk, readInput } from "../command-helpers"

async function simRescue(argv: string[]): Promise<number> {
    const args = parseArgs(argv, ["dir", "image"], ["json", "hold-button"])
    noPositional(args.positional)
    const dir = resolve(requireFlag(args, "dir"))
    const image = readInput(requireFlag(args, "image"), "image")

    const board = await openBoard(dir)
    try {
        if (hasFlag(args, "hold-button")) board.button.press()
        const profile = board.profile
        const result = await rescue(
            board,
            {
                deviceClass: profile.deviceClass,
                trialAttempts: profile.boot.trialAttempts,
                signaturePolicy: profile.boot.signaturePolicy,
            },
            image
        )
        printOk(
            args,
            {
                dir: dir,
                slot: result.slot,
                version: result.version,
                securityCounter: result.securityCounter,
                digest: result.digest,
                keySlot: result.keySlot,
            },
            `rescued: version ${result.version} (security counter ${result.securityCounter}) ` +
                `written to slot ${result.slot}, verified and active`
        )
        return EXIT_OK
    } catch (err) {
        if (err instanceof RescueError && err.check === "size") throw new UsageError(err.message)
        if (err instanceof RescueError) throw new RefusedError(err.message, { check: err.check })
        throw err
    } finally {
        board.close()
    }
}

registerCommands([
    {
        words: ["sim", "rescue"],
        usage: "sim rescue --dir DEV --image IMAGE [--hold-button] [--json]",
        summary: "write a signed rescue image to a board in recovery (button held; works locked)",
        run: simRescue,
    },
])
