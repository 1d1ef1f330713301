/**
 * TLS MQTT contract (DESIGN.md section 3; GP-TM-39, GP-TM-40): a client session over TLS
 * only. There is no option that opens a plaintext connection. `capabilities` says how the
 * board can authenticate, so callers refuse rather than weaken when something is missing.
 */

export interface MqttCapabilities {
    /** The board can present a client certificate backed by its secure element. */
    clientCertificate: boolean
    /** The board can pin the fleet CA instead of trusting a built-in bundle. */
    caPinning: boolean
    /** The board negotiates TLS 1.3. */
    tls13: boolean
}

export interface MqttConnectOptions {
    host: string
    port: number
    clientId: string
    /** Server name the broker certificate must match. */
    serverName: string
    /**
     * PEM of the fleet CA the broker certificate must chain to. The empty string asks for
     * the board's built-in trust store instead; only a board without `caPinning` accepts
     * it (token authentication on ESP32), and a board with pinning refuses it.
     */
    caPem: string
    keepAliveSec: number
    /** "certificate" (mutual TLS) or "token" (server-authenticated TLS plus a password). */
    auth: "certificate" | "token"
    /** For token authentication only; never logged. */
    token?: string
    connectTimeoutMs: number
    /** Inbound payloads larger than this are dropped by the transport (GP-TM-54). */
    maxPayload: number
}

export interface MqttMessage {
    topic: string
    payload: Buffer
}

export type MqttQos = 0 | 1

export interface MqttSession {
    publish(topic: string, payload: Buffer, qos: MqttQos): Promise<void>
    /** Subscribes; TransportError "refused" when the broker refuses the filter. */
    subscribe(filter: string, qos: MqttQos): Promise<void>
    /** Next inbound message, or null once the session has closed. */
    receive(): Promise<MqttMessage | null>
    isOpen(): boolean
    close(): Promise<void>
}

export interface MqttTransport {
    capabilities(): MqttCapabilities
    /** Opens a session; TransportError "tls", "auth", "timeout" or "refused". */
    connect(options: MqttConnectOptions): Promise<MqttSession>
}
