//! GraphQL through the gateway: real queries against a small GraphQL upstream.
