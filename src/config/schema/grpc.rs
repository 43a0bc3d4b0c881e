//! The `grpc` settings of a route or an upstream.
