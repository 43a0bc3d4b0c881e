//! The HTTP response cache: storage, keys, the RFC 9111 rules Portico adds to
//! Pingora's, and purging.

pub mod store;
