//! Generates the gRPC client and server code for `customs.v1`.
//!
//! The `.proto` files are parsed by `protox`, a pure-Rust protobuf compiler,
//! so no system `protoc` is needed; `tonic-prost-build` then turns the
//! resulting `FileDescriptorSet` into Rust in `OUT_DIR`.

use std::error::Error;

/// Root directory for proto imports, relative to this crate.
const PROTO_ROOT: &str = "proto";

/// Every proto file that is compiled, relative to [`PROTO_ROOT`].
const PROTO_FILES: &[&str] = &["customs/v1/customs.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
