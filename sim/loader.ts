/**
 * The sim's application loader (DESIGN.md section 6): evaluates exactly the payload bytes the
 * boot stub verified, as a CommonJS bundle, and returns its exports. It never reads the slot
 * again, so what runs is what was hashed and signature-checked (GP-TM-04). It is a loader,
 * not a sandbox: the app runs with the rights of the sim process, as firmware does on a board.
 */

import { compileFunction } from "node:vm"

import { APP_ABI, AppContext, AppReport } from "../src/app"

/** The exports an app bundle must provide. */
export interface AppModule {
    APP_ABI: number
    describeApp(ctx: AppContext): Promise<AppReport>
    [name: string]: unknown
}

export class LoaderError extends Error {
    readonly check: string
    constructor(check: string, message: string) {
        super(message)
        this.name = "LoaderError"
        this.check = check
    }
}

/** Evaluates a verified payload and checks it is an app bundle of the ABI the sim speaks. */
export function loadAppBundle(payload: Buffer, label = "bulwark-app"): AppModule {
    const source = payload.toString("utf8")
    let exportsObject: Record<string, unknown>
    try {
        const factory = compileFunction(source, ["module", "exports"], { filename: label })
        const module = { exports: {} as Record<string, unknown> }
        factory(module, module.exports)
        exportsObject = module.exports
    } catch (err) {
        throw new LoaderError("evaluate", `payload is not a loadable app bundle: ${String(err)}`)
    }
    if (exportsObject.APP_ABI !== APP_ABI)
        throw new LoaderError("abi", `app bundle ABI ${String(exportsObject.APP_ABI)}, want ${APP_ABI}`)
    if (typeof exportsObject.describeApp !== "function")
        throw new LoaderError("exports", "app bundle lacks describeApp")
    return exportsObject as unknown as AppModule
}
