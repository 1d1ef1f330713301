/** Loads every command module; each registers its commands with the CLI. */
export {}
import "./build"
import "./keys-image"
import "./sim-board"
import "./ca-provision"
import "./broker"
import "./sim-boot"
import "./audit"
import "./attest"
import "./sim-console"
import "./ota"
import "./sim-run"
import "./demo"
