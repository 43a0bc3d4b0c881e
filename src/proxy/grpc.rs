//! gRPC on the gateway side: recognising gRPC requests, answering Portico's own
//! failures as trailers-only gRPC responses, and `grpc-timeout` deadlines.
