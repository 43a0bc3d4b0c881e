//! gRPC over HTTP/2: message framing, status codes, `grpc-timeout`, and gRPC-Web.
