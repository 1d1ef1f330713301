/**
 * The automatic-update policy of the device profile (GP-TM-19): an update installs on its
 * own only inside the maintenance window update.windowStartHour..windowEndHour (UTC hours,
 * end excluded, wrapping past midnight when start > end), and only when `update.automatic`
 * is on; otherwise it waits for an explicit approval. Pure functions of the wall time.
 */

import { Profile } from "../boot/profile"

export type UpdatePolicy = Profile["update"]

/** True when the window covers the whole day (start == end counts as all day too). */
export function allDay(policy: UpdatePolicy): boolean {
    return (
        (policy.windowStartHour === 0 && policy.windowEndHour === 24) ||
        policy.windowStartHour === policy.windowEndHour
    )
}

/** UTC hour of the day of `wallTime` seconds, without `%` (a 32-bit operation on devices). */
export function utcHour(wallTime: number): number {
    const hours = Math.floor(wallTime / 3600)
    return hours - Math.floor(hours / 24) * 24
}

/**
 * Why an install must wait now, or null when it may go ahead: "manual" (automatic updates
 * off and no approval), "no-time" (a partial window and the device does not know the time),
 * "window" (outside the window).
 */
export function installBlocker(
    policy: UpdatePolicy,
    wallTime: number | null,
    approved: boolean
): string | null {
    if (!policy.automatic && !approved) return "manual"
    if (approved || allDay(policy)) return null
    if (wallTime === null) return "no-time"
    const hour = utcHour(wallTime)
    const start = policy.windowStartHour
    const end = policy.windowEndHour
    const inside = start < end ? hour >= start && hour < end : hour >= start || hour < end
    return inside ? null : "window"
}
