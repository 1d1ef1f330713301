/**
 * The three Reflect metadata calls that @peculiar/x509 (through tsyringe) needs at load time,
 * so the CA tools work without the `reflect-metadata` package. Import this module before
 * "@peculiar/x509". Host code only; it serves the fleet CA of tools/ca.ts (GP-TM-37).
 */

type MetadataTable = Map<unknown, unknown>

const tables = new WeakMap<object, MetadataTable>()

function ownTable(target: object, create: boolean): MetadataTable | undefined {
    let table = tables.get(target)
    if (!table && create) {
        table = new Map()
        tables.set(target, table)
    }
    return table
}

function getOwnMetadata(key: unknown, target: object): unknown {
    return ownTable(target, false)?.get(key)
}

function getMetadata(key: unknown, target: object): unknown {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
        const table = ownTable(t, false)
        if (table && table.has(key)) return table.get(key)
    }
    return undefined
}

function defineMetadata(key: unknown, value: unknown, target: object): void {
    ownTable(target, true)!.set(key, value)
}

const reflect = Reflect as unknown as Record<string, unknown>
if (typeof reflect.getMetadata !== "function") {
    reflect.getMetadata = getMetadata
    reflect.getOwnMetadata = getOwnMetadata
    reflect.defineMetadata = defineMetadata
}

export {}
