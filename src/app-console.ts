/**
 * The local admin console of the running app (docs/admin.md; GP-TM-08, GP-TM-22..26): off
 * unless the device profile enables it (services.console with its override) and the board
 * has a console channel. Each operator session gets a fresh console, so a session that
 * ends (the operator leaves) also ends the owner's login; the lockout state is on flash.
 */

import { Profile } from "../boot/profile"
import { Board } from "../hal/board"
import { Console } from "../hal/local"
import { AdminConsole, ConsoleCommand } from "./admin/console"
import { SecurityServices, openAdminConsole, runConsole } from "./admin/service"

/** Pause after a session in which nothing was typed, so a dead channel cannot spin. */
const IDLE_SESSION_PAUSE_MS = 1000

/** The part of the app the console sessions use (src/app.ts BulwarkApp). */
export interface ConsoleHost {
    /** Commands of other services (e.g. "privacy") offered to the logged-in owner. */
    consoleCommands(): ConsoleCommand[]
    /** Told the console of each new session (services that check the owner's login). */
    setAdminConsole(admin: AdminConsole): void
    /** True once the app is stopping: no new session starts. */
    isStopped(): boolean
}

/** True when this board and profile run the console (GP-TM-08: both must say so). */
export function consoleEnabled(board: Board, profile: Profile): boolean {
    return profile.services.console && board.console !== undefined
}

/** Counts the lines a session read, so a channel that is closed for good is noticed. */
class CountingChannel implements Console {
    lines = 0
    constructor(private readonly inner: Console) {}

    async readLine(): Promise<string | null> {
        const line = await this.inner.readLine()
        if (line !== null) this.lines++
        return line
    }

    async writeLine(line: string): Promise<void> {
        await this.inner.writeLine(line)
    }
}

/** Serves console sessions one after another on the board's channel until the app stops. */
export async function serveConsole(
    board: Board,
    profile: Profile,
    services: SecurityServices,
    host: ConsoleHost
): Promise<void> {
    const channel = board.console
    if (!profile.services.console || channel === undefined) return
    while (!host.isStopped()) {
        const admin = await openAdminConsole(board, profile, services, {
            commands: host.consoleCommands(),
        })
        host.setAdminConsole(admin)
        const counted = new CountingChannel(channel)
        await runConsole(counted, admin)
        if (counted.lines === 0) await board.clock.sleep(IDLE_SESSION_PAUSE_MS)
    }
}
