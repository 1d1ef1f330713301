/**
 * Node preload for bench/pq-vm.ts: `node -r ./bench/devs-no-gc-stress.cjs <devs cli> run F
 * --test` runs DeviceScript's WASM VM without the GC stress that `devs run --test` always
 * switches on (runTest calls inst.devsGcStress(true)), so VM timings are not dominated by a
 * collection at every allocation. Host-only benchmark tooling; not part of the firmware.
 */

"use strict"

const NAME = "devsGcStress"
const MARK = Symbol("bulwark-no-gc-stress")

// The VM module assigns `Exts.devsGcStress = devsGcStress` on a plain object and later copies
// it onto the module instance; each assignment lands here (no own property yet) and becomes
// an own property that always passes `false` to the real function.
Object.defineProperty(Object.prototype, NAME, {
    configurable: true,
    enumerable: false,
    get() {
        return undefined
    },
    set(fn) {
        let value = fn
        if (typeof fn === "function" && !fn[MARK]) {
            value = function devsGcStressOff(requested) {
                process.stderr.write(
                    `BULWARK-GC-STRESS requested=${requested ? 1 : 0} applied=0\n`
                )
                return fn.call(this, false)
            }
            value[MARK] = true
        }
        Object.defineProperty(this, NAME, {
            configurable: true,
            enumerable: true,
            writable: true,
            value,
        })
    },
})
