//! GraphQL requests: parsing, operation selection and the limits a gateway enforces.
