/**
 * Builds the sim app bundle: the portable app (src/app.ts) bundled by esbuild for Node as
 * one CommonJS file. That file is the payload `bulwark image sign --in` signs and the sim
 * loader runs after verified boot.
 */

import { mkdirSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"

import { build, Plugin } from "esbuild"

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
export const DEFAULT_APP_ENTRY = resolve(PACKAGE_ROOT, "src/app.ts")
export const DEFAULT_APP_OUT = resolve(PACKAGE_ROOT, "dist/app.js")

export interface AppBuildResult {
    path: string
    bytes: number
}

/** The module name under which the loader hands the bundle the board's HAL error classes. */
export const SHARED_HAL_ERRORS = "bulwark:hal/errors"
const HAL_ERRORS = resolve(PACKAGE_ROOT, "hal/errors")

/**
 * hal/errors is not bundled: the app must see the very classes the board throws (PowerLoss,
 * SecureElementError, ...), or its `instanceof` checks fail on errors from the sim's HAL.
 */
const sharedHalErrors: Plugin = {
    name: "shared-hal-errors",
    setup(b) {
        b.onResolve({ filter: /hal\/errors$/ }, (args) => {
            const full = resolve(args.resolveDir, args.path)
            if (full !== HAL_ERRORS) return undefined
            return { path: SHARED_HAL_ERRORS, external: true }
        })
    },
}

/** Bundles `entry` to `out`; deterministic for the same sources (no timestamps, no paths). */
export async function buildAppBundle(entry = DEFAULT_APP_ENTRY, out = DEFAULT_APP_OUT): Promise<AppBuildResult> {
    mkdirSync(dirname(out), { recursive: true })
    const result = await build({
        entryPoints: [entry],
        outfile: out,
        bundle: true,
        format: "cjs",
        platform: "neutral",
        target: "es2022",
        // The bundle is signed and sent over the air: minified, with names kept so error
        // classes and stack frames still read.
        minify: true,
        keepNames: true,
        legalComments: "none",
        logLevel: "silent",
        metafile: true,
        plugins: [sharedHalErrors],
    })
    const output = Object.values(result.metafile.outputs)[0]
    return { path: out, bytes: output ? output.bytes : 0 }
}
