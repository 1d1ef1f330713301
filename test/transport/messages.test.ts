/**
 * Property-based tests of every inbound decoder of the transport (GP-TM-54): random,
 * truncated, oversized and mutated inputs either decode to a value that meets the contract or
 * fail with a MessageError naming the check; no decoder throws anything else or keeps state.
 */

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
    decodeCommand,
    decodeJsonObject,
    isUtf8,
    MAX_JSON_DEPTH,
    MessageError,
    parseInboundTopic,
} from "../../src/messages"
import { checkIdentity, IdentityError, normalizeSetupCode } from "../../src/identity"

const CHECKS = ["topic", "size", "encoding", "json", "depth", "field", "version"]
const LIMIT = 1024

/** Runs `decode`; returns its value, or the MessageError check. Any other throw fails. */
function outcome<T>(decode: () => T): T | { check: string } {
    try {
        return decode()
    } catch (err) {
        expect(err).toBeInstanceOf(MessageError)
        expect(CHECKS).toContain((err as MessageError).check)
        return { check: (err as MessageError).check }
    }
}

const validCommand = fc.record({
    v: fc.constant(1),
    id: fc.stringMatching(/^[a-z0-9.-]{1,64}$/),
    name: fc.stringMatching(/^[a-z0-9.-]{1,64}$/),
    args: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.oneof(fc.integer(), fc.string())),
})

describe("inbound decoders (GP-TM-54)", () => {
    it("GP-TM-54: the command decoder accepts every well-formed command unchanged", () => {
        fc.assert(
            fc.property(validCommand, (cmd) => {
                const decoded = decodeCommand(Buffer.from(JSON.stringify(cmd)), LIMIT * 8)

                expect(decoded).toEqual({ id: cmd.id, name: cmd.name, args: cmd.args })
            })
        )
    })

    it("GP-TM-54: random bytes give a command or a typed error, the same each time", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 2 * LIMIT }), (bytes) => {
                const payload = Buffer.from(bytes)

                const first = outcome(() => decodeCommand(payload, LIMIT))
                const second = outcome(() => decodeCommand(payload, LIMIT))

                expect(second).toEqual(first)
                if (payload.length > LIMIT) expect(first).toEqual({ check: "size" })
            })
        )
    })

    it("GP-TM-54: truncated and mutated commands give a typed error or a valid command", () => {
        fc.assert(
            fc.property(validCommand, fc.nat(), fc.nat(255), (cmd, cut, byte) => {
                const full = Buffer.from(JSON.stringify(cmd))
                const truncated = full.subarray(0, cut % full.length)
                const mutated = Buffer.from(full)
                mutated[cut % full.length] = byte

                const t = outcome(() => decodeCommand(truncated, LIMIT * 8))
                const m = outcome(() => decodeCommand(mutated, LIMIT * 8))

                expect(t).toHaveProperty("check")
                if (!("check" in m)) expect(typeof m.name).toBe("string")
            })
        )
    })

    it("GP-TM-54: oversized payloads are refused for size before they are parsed", () => {
        const command = { v: 1, id: "a", name: "b", args: { x: "y".repeat(LIMIT) } }
        const big = Buffer.from(JSON.stringify(command))

        expect(outcome(() => decodeCommand(big, LIMIT))).toEqual({ check: "size" })
    })

    it("GP-TM-54: nesting deeper than the limit is refused before JSON.parse", () => {
        fc.assert(
            fc.property(fc.integer({ min: MAX_JSON_DEPTH + 1, max: 400 }), (depth) => {
                const text = '{"a":' + "[".repeat(depth - 1) + "]".repeat(depth - 1) + "}"

                const result = outcome(() => decodeJsonObject(Buffer.from(text), 4096))

                expect(result).toEqual({ check: "depth" })
            })
        )
    })

    it("GP-TM-54: the UTF-8 check agrees with Node's decoder on random bytes", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
                const buf = Buffer.from(bytes)
                let strict = true
                try {
                    new TextDecoder("utf-8", { fatal: true }).decode(buf)
                } catch {
                    strict = false
                }

                expect(isUtf8(buf)).toBe(strict)
            })
        )
    })

    it("GP-TM-54: topics outside the device's subtree or with odd levels are refused", () => {
        fc.assert(
            fc.property(fc.string({ maxLength: 300 }), (topic) => {
                const r = outcome(() => parseInboundTopic("dev-a", topic))

                if (!("check" in r)) {
                    expect(topic.startsWith("bulwark/dev-a/")).toBe(true)
                    expect(topic).not.toMatch(/[#+$]/)
                } else expect(r.check).toBe("topic")
            })
        )
        const bad = [
            "bulwark/dev-b/cmd",
            "bulwark/dev-a",
            "bulwark/dev-a/",
            "bulwark/dev-a/cmd/#",
            "bulwark/dev-a/+/x",
            "bulwark/dev-a//x",
            "$SYS/x",
            "bulwark/dev-a/" + "a/".repeat(9) + "a",
        ]
        for (const t of bad)
            expect(outcome(() => parseInboundTopic("dev-a", t))).toEqual({ check: "topic" })
        const good = parseInboundTopic("dev-a", "bulwark/dev-a/cmd/reboot")
        expect(good).toEqual({ channel: "cmd", path: ["reboot"] })
    })

    it("GP-TM-54: the identity checker refuses any value that is not an identity", () => {
        fc.assert(
            fc.property(fc.jsonValue(), (value) => {
                try {
                    checkIdentity(value)
                    expect.unreachable("a random JSON value passed as an identity")
                } catch (err) {
                    expect(err).toBeInstanceOf(IdentityError)
                }
            })
        )
    })

    it("GP-TM-54: setup-code normalisation accepts only 16 symbols of the label alphabet", () => {
        fc.assert(
            fc.property(fc.string({ maxLength: 80 }), (typed) => {
                const n = normalizeSetupCode(typed)

                if (n !== null) expect(n).toMatch(/^[0-9A-HJKMNP-TV-Z]{16}$/)
            })
        )
        expect(normalizeSetupCode("7k3m-q9xa-0o1i-lzzz")).toBe("7K3MQ9XA00111ZZZ")
    })
})
