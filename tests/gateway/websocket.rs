//! WebSocket through the gateway: a real tokio-tungstenite server and client.
