/** Runs the `bulwark` CLI in-process for tests: exit code, stdout, stderr, last JSON line. */

import { vi } from "vitest"

import { main } from "../../tools/cli"

export interface CliResult {
    code: number
    stdout: string
    stderr: string
    json: Record<string, any>
}

export async function runCli(argv: string[]): Promise<CliResult> {
    let stdout = ""
    let stderr = ""
    const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
        stdout += String(chunk)
        return true
    })
    const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
        stderr += String(chunk)
        return true
    })
    try {
        const code = await main(argv)
        const line = stdout.trim().split("\n").pop() ?? ""
        return { code, stdout, stderr, json: line.startsWith("{") ? JSON.parse(line) : {} }
    } finally {
        out.mockRestore()
        err.mockRestore()
    }
}
