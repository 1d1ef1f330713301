/**
 * Local, physical interfaces (DESIGN.md section 3): the tamper switch, the button used as
 * proof of physical presence, and the local admin console (GP-TM-08, GP-TM-31, GP-TM-25).
 */

export interface Tamper {
    /** True when the enclosure has been opened since the last clear. */
    triggered(): Promise<boolean>
}

export interface Button {
    /** True while the button is held. */
    held(): Promise<boolean>
}

/** A line-oriented local channel; one operator at a time. */
export interface Console {
    /** Next line typed by the operator, or null when the channel closed. */
    readLine(): Promise<string | null>
    writeLine(line: string): Promise<void>
}
