//! WebSocket on the gateway side: the handshake checks, the relay between
//! client and upstream, and the per-route message limits.
