/**
 * Runs async tasks one after the other without `new Promise` (DESIGN.md section 4), so
 * two callers appending to the audit log at once can never fork its chain (GP-TM-55).
 */

async function settle(run: Promise<number>): Promise<void> {
    try {
        await run
    } catch (e) {
        // The caller of `run` sees the error; the queue only needs to move on.
    }
}

async function afterPrevious(
    previous: Promise<void> | null,
    task: () => Promise<number>
): Promise<number> {
    if (previous !== null) await previous
    return await task()
}

export class SerialQueue {
    private tail: Promise<void> | null = null

    /** Starts `task` once every task queued before it has finished (or failed). */
    async run(task: () => Promise<number>): Promise<number> {
        const run = afterPrevious(this.tail, task)
        this.tail = settle(run)
        return await run
    }
}
