/**
 * The privacy command inside the real admin console (src/admin/console.ts, service.ts;
 * GP-TM-14, GP-TM-10): the owner logs in with the setup code, sets a password, then
 * exercises their rights by typing "privacy ..." lines; every privacy event lands in the
 * device's tamper-evident audit log. Without a login the console never reaches the command.
 */

import { afterAll, describe, expect, it } from "vitest"
import { SE_SLOT_IDENTITY } from "../../hal/secure-element"
import { AdminConsole } from "../../src/admin/console"
import { openAdminConsole, startSecurityServices } from "../../src/admin/service"
import { AuditRecord } from "../../src/audit/record"
import { hashSetupCode, writeIdentity } from "../../src/identity"
import { PARTITION_PREFS, PrefsStore } from "../../src/prefs"
import { PrivacyManager } from "../../src/privacy/manager"
import { privacyConsoleCommand } from "../../src/privacy/rights"
import { secureElementCheck } from "../../src/privacy/requests"
import { SimBoard } from "../../sim/board"
import { cleanupTestBoards } from "../../sim/testing"
import { T0, privacyBoard } from "./helpers"

afterAll(() => cleanupTestBoards())

const SETUP_CODE = "K7QX-9MNP-2RTW-4HJD"
const PASSWORD = "amber orchard lantern 42"
const DEVICE = "dev-0123456789ab"
const PEM = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n"

/** A provisioned board with the console on, its services, privacy and the console. */
async function ownerConsole() {
    const board: SimBoard = await privacyBoard({
        profile: {
            services: { console: true, debugPort: false },
            security: { overrides: ["console"] },
        },
    })
    await board.secureElement.generateKey(SE_SLOT_IDENTITY)
    const salt = Buffer.alloc(16, 3)
    const setup = await hashSetupCode(board.crypto, board.clock, SETUP_CODE, salt, 1000)
    await writeIdentity(board.crypto, board.secureElement, board.flash.partition("identity"), {
        deviceId: DEVICE,
        certificatePem: PEM,
        caPem: PEM,
        setupCode: setup,
    })
    const services = await startSecurityServices(board, board.profile)
    const prefs = await PrefsStore.open(board.flash.partition(PARTITION_PREFS), board.crypto)
    const audit = async (event: string, actor: string, outcome: string, detail: string) => {
        await services.audit.append({ event, actor, outcome, detail })
    }
    const manager = await PrivacyManager.open({ prefs, clock: board.clock, audit })
    let admin: AdminConsole | null = null
    const command = privacyConsoleCommand({
        manager,
        prefs,
        crypto: board.crypto,
        clock: board.clock,
        audit,
        deviceId: services.deviceId,
        consoleOwner: () => admin !== null && admin.ownerLoggedIn(),
        operatorKeys: [],
        verify: secureElementCheck(board.crypto, board.secureElement),
    })
    admin = await openAdminConsole(board, board.profile, services, {
        iterations: 1000,
        commands: [command],
    })
    const console = admin
    const say = async (...lines: string[]) => {
        const out: string[] = []
        for (const line of lines) await console.handle(line, async (r) => void out.push(r))
        return out
    }
    return { board, services, manager, admin: console, say }
}

async function records(services: Awaited<ReturnType<typeof ownerConsole>>["services"]) {
    const out: AuditRecord[] = []
    await services.audit.forEach(0, async (r) => void out.push(r))
    return out
}

describe("privacy on the admin console", () => {
    it("GP-TM-14: the logged-in owner grants, exports and erases, all audited", async () => {
        const { manager, services, say } = await ownerConsole()
        await manager.collect("owner-profile", { name: "Zoë", contact: "zoe@example.org" })

        await say("login", "owner", SETUP_CODE, PASSWORD, PASSWORD)
        const granted = await say("privacy consent telemetry grant")
        const exported = await say("privacy export")
        const erased = await say("privacy erase " + DEVICE)

        expect(granted).toEqual(["ok"])
        expect(exported[0]).toBe("privacy-begin")
        const pieces = exported.slice(1, -1).map((l) => l.slice("privacy ".length))
        const doc = JSON.parse(pieces.join(""))
        expect(doc.data["owner-profile"]).toEqual([
            { t: String(T0), f: { name: "Zoë", contact: "zoe@example.org" } },
        ])
        expect(erased).toEqual(["ok"])
        expect(manager.held("owner-profile")).toEqual([])
        const privacy = (await records(services)).filter((r) => r.event.startsWith("privacy-"))
        expect(privacy.map((r) => [r.event, r.actor, r.outcome])).toEqual([
            ["privacy-consent", "console:owner", "success"],
            ["privacy-request", "console:owner", "success"],
            ["privacy-request", "console:owner", "info"],
            ["privacy-request", "console:owner", "success"],
        ])
        expect(JSON.stringify(privacy)).not.toContain("Zo")
    })

    it("GP-TM-14: before login and after logout, privacy lines never reach the data", async () => {
        const { manager, say } = await ownerConsole()
        await manager.collect("preferences", { brightness: 20 })

        const before = await say("privacy erase " + DEVICE)
        await say("login", "owner", SETUP_CODE, PASSWORD, PASSWORD, "logout")
        const after = await say("privacy erase " + DEVICE, "privacy export")

        expect(before).toEqual(["error: log in first"])
        expect(after).toEqual(["error: log in first", "error: log in first"])
        expect(manager.valueOf("preferences", "brightness")).toBe(20)
    })
})
