//! Compiles `micro/v1/micro.proto` with protox (a protobuf compiler in
//! Rust: no `protoc` on the build machine or in the container builder) and
//! generates the Rust types with prost-build.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = "micro/v1/micro.proto";
    println!("cargo:rerun-if-changed={schema}");
    // The well-known types (Timestamp, Struct) are built into protox.
    let descriptors = protox::compile([schema], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // For the tests that read messages by reflection (the proto3 JSON
    // mapping); not linked into the library.
    std::fs::write(
        out.join("micro.fds"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
