//! Observability: Prometheus metrics, the JSON access log, and the `tracing`
//! subscriber that Pingora's own `log` output is bridged into.

pub mod access_log;
pub mod logging;
pub mod metrics;
