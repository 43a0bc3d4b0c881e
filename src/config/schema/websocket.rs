//! The `websocket` settings of a route: who may open a connection, and the
//! limits the gateway enforces on it while it relays frames.
//!
//! Every route relays WebSocket handshakes with Portico's own relay; a route
//! without this section gets the defaults below.

use std::time::Duration;

use serde::Deserialize;

use super::{Dur, Size};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSpec {
    /// `Origin` values allowed to open a connection, compared exactly
    /// (scheme, host and port, lowercase). Empty lets any origin in,
    /// including handshakes without `Origin` (non-browser clients).
    #[serde(default)]
    pub origins: Vec<String>,
    /// The largest data message, all its fragments together. A larger one
    /// closes the connection with 1009 on both sides. Default 1MiB.
    #[serde(default = "default_max_message")]
    pub max_message_size: Size,
    /// A connection on which no frame has passed in either direction, the
    /// client's answers to pings included, for this long is closed with
    /// 1001. Default 60s, the read timeout nginx users know.
    #[serde(default = "default_idle")]
    pub idle_timeout: Dur,
    /// After this much quiet the gateway pings the client, and again at
    /// this interval; a live client's pong keeps the connection open, so
    /// `idle_timeout` then closes only peers that stopped answering.
    /// `0s` turns pings off. Default 30s.
    #[serde(default = "default_ping")]
    pub ping_interval: Dur,
    /// Open connections allowed on the route in this process; the handshake
    /// past it is answered 503. Unlimited when absent.
    #[serde(default)]
    pub max_connections: Option<u64>,
}

impl Default for WebSocketSpec {
    fn default() -> Self {
        WebSocketSpec {
            origins: Vec::new(),
            max_message_size: default_max_message(),
            idle_timeout: default_idle(),
            ping_interval: default_ping(),
            max_connections: None,
        }
    }
}

fn default_max_message() -> Size {
    Size(1024 * 1024)
}

fn default_idle() -> Dur {
    Dur(Duration::from_secs(60))
}

fn default_ping() -> Dur {
    Dur(Duration::from_secs(30))
}
