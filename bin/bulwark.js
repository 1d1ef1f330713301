#!/usr/bin/env node
// Entry of the `bulwark` CLI: loads the TypeScript sources through tsx, so a fresh
// `npm install` needs no build step before `npx bulwark` works.
import { register } from "tsx/esm/api"

register()
const { main } = await import("../tools/cli.ts")
process.exitCode = await main(process.argv.slice(2))
