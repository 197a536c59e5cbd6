//! Generated protobuf messages and gRPC clients for the minimal Deephaven `.proto` subset in `proto/` (compiled by
//! `build.rs`). Only the fields this crate sends or reads are declared; field numbers are the wire contract.

/// `io.deephaven.proto.backplane.grpc`: tickets, tables, sessions, input tables, config.
#[allow(dead_code, clippy::all, clippy::pedantic)]
pub(crate) mod backplane {
    tonic::include_proto!("io.deephaven.proto.backplane.grpc");
}

/// `google.rpc.Status`, the payload of the `grpc-status-details-bin` trailer.
#[allow(dead_code, clippy::all, clippy::pedantic)]
pub(crate) mod rpc {
    tonic::include_proto!("google.rpc");
}
