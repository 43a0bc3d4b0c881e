//! WebSocket (RFC 6455): handshake checks and an incremental frame parser.
