/**
 * The sim's application loader (DESIGN.md section 6): evaluates exactly the payload bytes the
 * boot stub verified, as a CommonJS bundle, and returns its exports. It never reads the slot
 * again, so what runs is what was hashed and signature-checked (GP-TM-04). It is a loader,
 * not a sandbox: the app runs with the rights of the sim process, as firmware does on a board.
 */

import { compileFunction } from "node:vm"

import * as halErrors from "../hal/errors"
import { SHARED_HAL_ERRORS } from "../tools/app-build"

import { APP_ABI, AppContext, AppOptions, AppReport, AppState } from "../src/app"
import { CheckError } from "../hal/errors"

/** The running app a bundle's `createApp` returns (src/app.ts BulwarkApp). */
export interface RunningApp {
    run(): Promise<void>
    stop(): Promise<void>
    state(): AppState
}

/** The exports an app bundle must provide; `createApp` is what the sim runner starts. */
export interface AppModule {
    APP_ABI: number
    describeApp(ctx: AppContext): Promise<AppReport>
    createApp?: (ctx: AppContext, options?: AppOptions) => RunningApp
    [name: string]: unknown
}

export class LoaderError extends CheckError {
    constructor(check: string, message: string) {
        super(check, message)
        this.name = "LoaderError"
    }
}

/**
 * The only module a bundle may require: the HAL's error classes, shared with the board so
 * errors keep their class across the boundary (tools/app-build.ts leaves them out).
 */
function boardModule(name: string): unknown {
    if (name === SHARED_HAL_ERRORS) return halErrors
    throw new LoaderError("require", "app bundle requires an unknown module")
}

/** Evaluates a verified payload and checks it is an app bundle of the ABI the sim speaks. */
export function loadAppBundle(payload: Buffer, label = "bulwark-app"): AppModule {
    const source = payload.toString("utf8")
    let exportsObject: Record<string, unknown>
    try {
        const factory = compileFunction(source, ["module", "exports", "require"], { filename: label })
        const module = { exports: {} as Record<string, unknown> }
        factory(module, module.exports, boardModule)
        exportsObject = module.exports
    } catch (err) {
        throw new LoaderError("evaluate", `payload is not a loadable app bundle: ${String(err)}`)
    }
    if (exportsObject.APP_ABI !== APP_ABI)
        throw new LoaderError("abi", `app bundle ABI ${String(exportsObject.APP_ABI)}, want ${APP_ABI}`)
    if (typeof exportsObject.describeApp !== "function")
        throw new LoaderError("exports", "app bundle lacks describeApp")
    if (exportsObject.createApp !== undefined && typeof exportsObject.createApp !== "function")
        throw new LoaderError("exports", "app bundle's createApp is not a function")
    return exportsObject as unknown as AppModule
}
