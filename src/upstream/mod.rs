//! Upstream pools: named groups of backends, how one backend is chosen for a
//! request, and how backends are judged healthy.
//!
//! A [`Pool`] is built once per configuration snapshot from a validated
//! [`UpstreamSpec`](crate::config::schema::UpstreamSpec). Health is kept per
//! backend in atomics, written by the active checker ([`health`]) and by the
//! proxy when a request fails ([`Pool::report`]), and read lock-free by
//! [`Pool::select`].

mod balance;
pub mod circuit;
mod grpc_health;
pub mod health;
mod pool;
pub mod resolve;

pub use balance::HashKey;
pub use pool::{Backend, InflightGuard, Outcome, Pool};
