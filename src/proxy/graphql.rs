//! GraphQL on the gateway side: reading the operation before the upstream is
//! chosen, applying the route's limits and routing by operation.
