//! The `graphql` settings of a route or an upstream.
