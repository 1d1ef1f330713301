/**
 * Builds the sim app bundle: the portable app (src/app.ts) bundled by esbuild for Node as
 * one CommonJS file. That file is the payload `bulwark image sign --in` signs and the sim
 * loader runs after verified boot.
 */

import { mkdirSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"

import { build } from "esbuild"

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")
export const DEFAULT_APP_ENTRY = resolve(PACKAGE_ROOT, "src/app.ts")
export const DEFAULT_APP_OUT = resolve(PACKAGE_ROOT, "dist/app.js")

export interface AppBuildResult {
    path: string
    bytes: number
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
        minify: false,
        legalComments: "none",
        logLevel: "silent",
        metafile: true,
    })
    const output = Object.values(result.metafile.outputs)[0]
    return { path: out, bytes: output ? output.bytes : 0 }
}
