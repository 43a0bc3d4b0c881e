//! Integration tests: the real `portico` binary in front of real upstream
//! servers, all on ephemeral loopback ports. One test binary keeps link time
//! low; each module covers one area of behaviour.

mod support;

mod attacks;
mod auth;
mod balancing;
mod cache;
mod cli;
mod compression;
mod errors;
mod graphql;
mod grpc;
mod health;
mod hostile;
mod hostile_protocols;
mod introspection;
mod lifecycle;
mod protection;
mod proxy_protocol;
mod proxying;
mod routing;
mod streaming;
mod subscriptions;
mod tls;
mod traffic;
mod transform;
mod websocket;
