//! gRPC through the gateway: a real tonic server and client.
