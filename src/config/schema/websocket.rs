//! The `websocket` settings of a route or an upstream.
