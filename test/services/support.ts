/**
 * Shared arrangements of the services tests: boards with small audit partitions, an audit
 * log opened on them, and exports collected into one buffer for the offline verifier.
 */

import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { AdminConsole, ConsoleCommand } from "../../src/admin/console"
import { LoginPolicy } from "../../src/admin/login"
import { SecurityServices, openAdminConsole, startSecurityServices } from "../../src/admin/service"
import { hashSetupCode, writeIdentity } from "../../src/identity"
import { AuditLog, AuditLogOptions } from "../../src/audit/log"
import { ExportContext, writeExport } from "../../src/audit/export"
import { VerifyReport, cryptoSignatureCheck, verifyExport } from "../../src/audit/verify"
import { SimBoard } from "../../sim/board"
import { SimCrypto } from "../../sim/crypto"
import { TestBoardOptions, makeTestBoard } from "../../sim/testing"

export const hostCrypto = new SimCrypto()

/**
 * A board whose flash has 1 KiB sectors, so a 3-sector audit ring recycles after about
 * twenty records and power-cut sweeps stay short.
 */
export async function smallSectorBoard(
    auditSectors = 3,
    extra: TestBoardOptions = {}
): Promise<SimBoard> {
    const sector = 1024
    const sizes: Record<string, number> = {
        "boot-state": 2 * sector,
        "slot-a": 8 * sector,
        "slot-b": 8 * sector,
        "ota-state": 2 * sector,
        audit: auditSectors * sector,
        prefs: 2 * sector,
        "secure-settings": 2 * sector,
        identity: 8 * sector,
    }
    return makeTestBoard({
        ...extra,
        profile: {
            flash: {
                sectorSize: sector,
                writeAlign: 4,
                partitions: Object.keys(sizes).map((name) => ({ name, size: sizes[name] })),
            },
            ...(extra.profile ?? {}),
        },
    })
}

/** Generates the identity key in SE slot 0 (what provisioning does) and returns it. */
export async function giveIdentity(board: SimBoard): Promise<Buffer> {
    return board.secureElement.generateKey(SE_SLOT_IDENTITY)
}

export async function openAudit(board: SimBoard, options?: AuditLogOptions): Promise<AuditLog> {
    return AuditLog.open(
        {
            partition: board.flash.partition("audit"),
            secureElement: board.secureElement,
            crypto: board.crypto,
            clock: board.clock,
        },
        options
    )
}

export function exportContext(board: SimBoard, log: AuditLog): ExportContext {
    return {
        log,
        secureElement: board.secureElement,
        crypto: board.crypto,
        clock: board.clock,
        deviceId: "dev-test",
        operatorKeys: [],
        recentNonces: [],
    }
}

/** The whole export as one buffer, as `bulwark audit verify` reads it from a file. */
export async function exportAll(board: SimBoard, log: AuditLog, fromSeq = 0): Promise<Buffer> {
    const pieces: Buffer[] = []
    await writeExport(exportContext(board, log), Buffer.alloc(16, 9), fromSeq, async (p) => {
        pieces.push(p)
    })
    return Buffer.concat(pieces)
}

export async function verify(devicePub: Buffer, bytes: Buffer): Promise<VerifyReport> {
    return verifyExport(hostCrypto, cryptoSignatureCheck(hostCrypto), devicePub, bytes)
}

/** Appends `n` plain events named after their number. */
export async function appendMany(log: AuditLog, n: number, from = 0): Promise<number[]> {
    const seqs: number[] = []
    for (let i = from; i < from + n; i++)
        seqs.push(
            await log.append({
                event: "config",
                actor: "test",
                outcome: "success",
                detail: "change=" + i,
            })
        )
    return seqs
}

/** A setup code as printed on a label (Crockford base32, four groups). */
export const SETUP_CODE = "K7QX-9MNP-2RTW-4HJD"
const FAKE_PEM = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n"

/** Profile sections that switch the console on, with the override it needs. */
export const CONSOLE_ON = {
    services: { console: true, debugPort: false },
    security: { overrides: ["console"] },
}

/**
 * A provisioned board with the console enabled: identity key in the SE, an identity record
 * with SETUP_CODE hashed at a test-sized iteration count, some user data in "prefs".
 */
export async function consoleBoard(
    security: Record<string, unknown> = {}
): Promise<{ board: SimBoard; pub: Buffer }> {
    const board = await smallSectorBoard(4, {
        profile: { ...CONSOLE_ON, security: { ...CONSOLE_ON.security, ...security } },
    })
    const pub = await giveIdentity(board)
    const salt = Buffer.alloc(16, 3)
    const setup = await hashSetupCode(board.crypto, board.clock, SETUP_CODE, salt, 1000)
    await writeIdentity(board.crypto, board.secureElement, board.flash.partition("identity"), {
        deviceId: "dev-0123456789ab",
        certificatePem: FAKE_PEM,
        caPem: FAKE_PEM,
        setupCode: setup,
    })
    const prefs = board.flash.partition("prefs")
    await prefs.program(0, Buffer.from("user-preference!"))
    return { board, pub }
}

export interface Session {
    admin: AdminConsole
    services: SecurityServices
    /** Sends lines and returns every reply line. */
    say(...lines: string[]): Promise<string[]>
}

export async function openConsole(
    board: SimBoard,
    policy?: LoginPolicy,
    commands?: ConsoleCommand[]
): Promise<Session> {
    const services = await startSecurityServices(board, board.profile, { epochRecords: 8 })
    const admin = await openAdminConsole(board, board.profile, services, {
        iterations: 1000,
        policy,
        commands,
    })
    return {
        admin,
        services,
        async say(...lines: string[]) {
            const out: string[] = []
            for (const line of lines)
                await admin.handle(line, async (reply) => {
                    out.push(reply)
                })
            return out
        },
    }
}

/** Logs in as `user` and returns the replies to the password line. */
export async function login(session: Session, user: string, secret: string): Promise<string[]> {
    const replies = await session.say("login", user, secret)
    return replies.slice(2)
}

export const OWNER_PASSWORD = "amber orchard lantern 42"
