//! Portico: an API gateway on Cloudflare's Pingora.
//!
//! A request enters through a listener, its path is normalised once, a route is
//! chosen from the compiled route table, a backend is picked from the route's
//! health-checked pool, and the exchange is logged and counted. The modules
//! follow that pipeline:
//!
//! - [`config`]: the YAML schema, loading, `${VAR}` expansion and validation;
//! - [`gateway`]: the compiled, immutable configuration snapshot;
//! - [`router`]: path normalisation and the compiled route table;
//! - [`auth`]: consumers, API keys, Basic auth, JWT providers and each
//!   route's authorisation;
//! - [`policy`]: IP filters, size limits, threat protection and CORS;
//! - [`limit`]: rate limits (local and Redis) and concurrency limits;
//! - [`upstream`]: pools, backend selection, active and passive health;
//! - [`tls`]: listener certificates by SNI, client certificates, upstream TLS;
//! - [`proxy`]: the Pingora `ProxyHttp` implementation and the error responder;
//! - [`observe`]: metrics and the access log;
//! - [`admin`]: the admin listener (`/healthz`, `/readyz`, `/metrics`);
//! - [`server`]: assembling and running the Pingora server;
//! - [`demo`]: the small JSON services behind the default configuration.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod limit;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod router;
pub mod server;
pub mod tls;
pub mod upstream;
