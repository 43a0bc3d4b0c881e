//! Protocol logic for Portico that does not need Pingora: what the gateway
//! must understand of gRPC, gRPC-Web, WebSocket and GraphQL traffic to route,
//! limit and answer it. Each module is pure (bytes and text in, decisions and
//! bytes out), so it is unit-tested and fuzzed here on its own; the gateway
//! wires it into the request pipeline.

pub mod graphql;
pub mod grpc;
pub mod websocket;
