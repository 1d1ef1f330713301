/**
 * The simulated board's local admin channel (hal/local.ts Console; docs/admin.md, "The sim
 * console"): a line console over any Node stream pair, a Unix socket DEV/console.sock that
 * a running sim device serves, and an in-process session for a device that is not running,
 * which `bulwark sim console --dir DEV` falls back to. GP-TM-08: off unless the profile says.
 */

import { existsSync, unlinkSync } from "node:fs"
import { Server, Socket, createConnection, createServer } from "node:net"
import { join } from "node:path"
import { Readable, Writable } from "node:stream"
import { Console } from "../hal/local"
import { AdminConsole } from "../src/admin/console"
import { ConsoleOptions, openAdminConsole, startSecurityServices } from "../src/admin/service"
import { SimBoard } from "./board"

export const CONSOLE_SOCKET = "console.sock"
/** Longest line the console reads; longer input is cut (no password is this long). */
const MAX_LINE = 1024

export function consoleSocketPath(dir: string): string {
    return join(dir, CONSOLE_SOCKET)
}

/** Splits a byte stream into lines for `readLine`; null once the stream has ended. */
class LineReader {
    private buffered = ""
    private lines: string[] = []
    private ended = false
    private waiting: (() => void) | null = null

    constructor(input: Readable) {
        input.setEncoding("utf8")
        input.on("data", (chunk: string) => this.push(chunk))
        input.on("end", () => this.finish())
        input.on("close", () => this.finish())
        input.on("error", () => this.finish())
    }

    async next(): Promise<string | null> {
        while (this.lines.length === 0 && !this.ended)
            await new Promise<void>((resolve) => (this.waiting = resolve))
        const line = this.lines.shift()
        return line === undefined ? null : line
    }

    private push(chunk: string): void {
        this.buffered += chunk
        let nl = this.buffered.indexOf("\n")
        while (nl >= 0) {
            this.lines.push(this.buffered.slice(0, nl).replace(/\r$/, "").slice(0, MAX_LINE))
            this.buffered = this.buffered.slice(nl + 1)
            nl = this.buffered.indexOf("\n")
        }
        this.wake()
    }

    private finish(): void {
        if (this.buffered.length > 0) this.lines.push(this.buffered.slice(0, MAX_LINE))
        this.buffered = ""
        this.ended = true
        this.wake()
    }

    private wake(): void {
        const w = this.waiting
        this.waiting = null
        if (w) w()
    }
}

/** A HAL Console over a readable and a writable stream (stdin/stdout, a socket). */
export class StreamConsole implements Console {
    private readonly reader: LineReader

    constructor(
        input: Readable,
        private readonly output: Writable
    ) {
        this.reader = new LineReader(input)
    }

    readLine(): Promise<string | null> {
        return this.reader.next()
    }

    async writeLine(line: string): Promise<void> {
        if (this.output.writable) this.output.write(line + "\n")
    }
}

/**
 * The console a running sim device offers on DEV/console.sock: one client at a time;
 * `readLine` waits for a client and returns null when it leaves (that session ends and
 * the next `readLine` waits for the next client). Attach it with SimBoardOptions.console.
 */
export class SocketConsole implements Console {
    private readonly server: Server
    private client: { socket: Socket; console: StreamConsole } | null = null
    private pending: Socket[] = []
    private waiting: (() => void) | null = null
    /** Lines written while nobody is attached (the greeting): shown when someone is. */
    private held: string[] = []

    constructor(readonly path: string) {
        if (existsSync(path)) unlinkSync(path)
        this.server = createServer((socket) => {
            if (this.client !== null) {
                socket.end("busy: another operator is attached\n")
                return
            }
            this.pending.push(socket)
            const w = this.waiting
            this.waiting = null
            if (w) w()
        })
        this.server.listen(path)
    }

    async readLine(): Promise<string | null> {
        while (this.client === null) {
            const socket = this.pending.shift()
            if (socket) {
                this.client = { socket, console: new StreamConsole(socket, socket) }
                for (const line of this.held.splice(0)) await this.client.console.writeLine(line)
            } else await new Promise<void>((resolve) => (this.waiting = resolve))
        }
        const line = await this.client.console.readLine()
        if (line === null) {
            this.client.socket.destroy()
            this.client = null
        }
        return line
    }

    async writeLine(line: string): Promise<void> {
        if (this.client !== null) await this.client.console.writeLine(line)
        else if (this.held.length < 64) this.held.push(line)
    }

    close(): void {
        if (this.client) this.client.socket.destroy()
        for (const s of this.pending) s.destroy()
        this.server.close()
        if (existsSync(this.path)) unlinkSync(this.path)
    }
}

/** Connects to a running device's console socket; null when nobody serves it. */
export function connectConsoleSocket(dir: string): Promise<Socket | null> {
    const path = consoleSocketPath(dir)
    if (!existsSync(path)) return Promise.resolve(null)
    return new Promise((resolve) => {
        const socket = createConnection(path)
        socket.once("connect", () => resolve(socket))
        socket.once("error", () => resolve(null))
    })
}

export interface LocalSession {
    board: SimBoard
    admin: AdminConsole
    close(): void
}

/**
 * Powers the (not running) device in DEV on in this process with the real clock and opens
 * its console, in recovery mode when `holdButton` (the button held at power-on).
 * ServiceError "disabled" when the device profile keeps the console off.
 */
export async function openLocalSession(
    dir: string,
    options: { holdButton?: boolean } & ConsoleOptions = {}
): Promise<LocalSession> {
    const board = await SimBoard.open(dir, { clock: "real" })
    try {
        if (options.holdButton) board.button.press()
        const services = await startSecurityServices(board, board.profile)
        const admin = await openAdminConsole(board, board.profile, services, options)
        return { board, admin, close: () => board.close() }
    } catch (err) {
        board.close()
        throw err
    }
}
