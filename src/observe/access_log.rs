//! One JSON line per request, written through `tracing` to the access-log sink.

use tracing::info;

use super::logging::ACCESS_TARGET;

/// The facts of one finished request. Credentials never appear here.
pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub client: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub backend: &'a str,
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// Time to the upstream's response header, in milliseconds (0: none).
    pub upstream_ms: f64,
    pub total_ms: f64,
    /// Why Portico answered itself, when it did (`no_route`, `upstream_timeout`, ...).
    pub error: &'a str,
    /// The rate limit that refused the request, when one did.
    pub limited: &'a str,
}

/// Whether access-log lines are written at all (`access_log.target` is not
/// `off`); a cheap check of the callsite's cached interest, so that a request
/// builds no record when nobody reads it.
pub fn enabled() -> bool {
    tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}

impl AccessRecord<'_> {
    /// Emits the record of an anonymous request; the timestamp comes from
    /// the subscriber.
    pub fn emit(&self) {
        self.emit_for("-");
    }

    /// Emits the record with `consumer`, the authenticated consumer's id
    /// (`-` when anonymous). The id is a parameter rather than a field so
    /// that code building records for anonymous traffic stays unchanged.
    pub fn emit_for(&self, consumer: &str) {
        info!(
            target: ACCESS_TARGET,
            request_id = self.request_id,
            client = self.client,
            method = self.method,
            host = self.host,
            path = self.path,
            route = self.route,
            backend = self.backend,
            status = self.status,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            upstream_ms = self.upstream_ms,
            total_ms = self.total_ms,
            error = self.error,
            limited = self.limited,
            consumer,
            "request"
        );
    }
}
