/**
 * The device profile (devs.config.json, boot/profile.ts): the shipped file is valid, every
 * bad field is refused with an error naming it, and settings that weaken security are
 * refused without an explicit override (GP-TM-08, GP-TM-45).
 */

import { readFileSync } from "node:fs"
import { resolve } from "node:path"

import { describe, expect, it } from "vitest"

import { parseProfile, ProfileError } from "../boot/profile"

const shipped = JSON.parse(readFileSync(resolve(__dirname, "../devs.config.json"), "utf8"))

function withChange(change: (p: any) => void): unknown {
    const copy = JSON.parse(JSON.stringify(shipped))
    change(copy)
    return copy
}

function fieldOf(json: unknown): string {
    try {
        parseProfile(json)
    } catch (err) {
        expect(err).toBeInstanceOf(ProfileError)
        return (err as ProfileError).field
    }
    throw new Error("profile was accepted")
}

describe("device profile", () => {
    it("GP-TM-08: the shipped profile is valid, with every optional service off", () => {
        const profile = parseProfile(shipped)

        expect(profile.services).toEqual({ console: false, debugPort: false })
        expect(profile.security.overrides).toEqual([])
    })

    it("GP-TM-08/45: enabling the console or the debug port without an override is refused", () => {
        expect(fieldOf(withChange((p) => (p.services.console = true)))).toBe("services.console")
        expect(fieldOf(withChange((p) => (p.services.debugPort = true)))).toBe("services.debugPort")
    })

    it("GP-TM-08: an explicit override enables exactly the service it names", () => {
        const json = withChange((p) => {
            p.services.console = true
            p.security.overrides = ["console"]
        })

        const profile = parseProfile(json)

        expect(profile.services).toEqual({ console: true, debugPort: false })
        expect(fieldOf(withChange((p) => (p.security.overrides = ["telnet"])))).toBe("security.overrides[0]")
    })

    it.each([
        ["an unknown top-level field", (p: any) => (p.extra = 1), "(root).extra"],
        ["a wrong profile version", (p: any) => (p.profileVersion = 2), "profileVersion"],
        ["an unknown board", (p: any) => (p.board = "arduino"), "board"],
        ["a device class with capitals", (p: any) => (p.deviceClass = "Sensor"), "deviceClass"],
        ["a sector size that is not a number", (p: any) => (p.flash.sectorSize = "4k"), "flash.sectorSize"],
        ["a partition size off the sector grid", (p: any) => (p.flash.partitions[1].size = 5000), "flash.partitions[1].size"],
        ["a duplicated partition", (p: any) => (p.flash.partitions[2].name = "slot-a"), "flash.partitions[2].name"],
        ["a missing slot partition", (p: any) => p.flash.partitions.splice(2, 1), "flash.partitions"],
        ["zero trial attempts", (p: any) => (p.boot.trialAttempts = 0), "boot.trialAttempts"],
        ["an unknown signature policy", (p: any) => (p.boot.signaturePolicy = "none"), "boot.signaturePolicy"],
        ["a port out of range", (p: any) => (p.transport.brokerPort = 70000), "transport.brokerPort"],
        ["a host name with a space", (p: any) => (p.transport.brokerHost = "a b"), "transport.brokerHost"],
        ["a backoff maximum below its minimum", (p: any) => (p.transport.backoffMaxMs = 100), "transport.backoffMaxMs"],
        ["a chunk size off the write alignment", (p: any) => (p.update.chunkSize = 1001), "update.chunkSize"],
        ["a rate limit of zero", (p: any) => (p.rateLimits.logins.ratePerSec = 0), "rateLimits.logins.ratePerSec"],
        ["a fractional burst", (p: any) => (p.rateLimits.commands.burst = 1.5), "rateLimits.commands.burst"],
    ])("refuses %s, naming the field", (_what, change, field) => {
        expect(fieldOf(withChange(change))).toBe(field)
    })

    it("refuses what is not an object at all", () => {
        for (const bad of [null, 42, "profile", [], undefined]) expect(fieldOf(bad)).toBe("(root)")
    })
})
