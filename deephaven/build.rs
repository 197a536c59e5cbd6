//! Compiles the crate's minimal Deephaven `.proto` subset with a pure-Rust
//! protobuf compiler (protox), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: &[&str] = &[
        "proto/deephaven/ticket.proto",
        "proto/deephaven/config.proto",
        "proto/deephaven/session.proto",
        "proto/deephaven/table.proto",
        "proto/deephaven/inputtable.proto",
        "proto/google/rpc/status.proto",
    ];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure().build_server(false).build_transport(false).compile_fds(descriptors)?;
    Ok(())
}
