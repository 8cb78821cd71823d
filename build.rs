//! Compiles `proto/enlace/v1/*.proto` without a system `protoc`: protox
//! parses the files into a descriptor set, tonic-prost-build generates the
//! Rust code from it, and the encoded descriptor set is kept for gRPC server
//! reflection. tonic-prost-build does not print `rerun-if-changed` lines when
//! it is handed a descriptor set, so this script prints its own.

use std::{env, fs, path::PathBuf};

use protox::prost::Message;

const PROTO_DIR: &str = "proto";
const PROTOS: &[&str] = &[
    "proto/enlace/v1/record.proto",
    "proto/enlace/v1/roster.proto",
    "proto/enlace/v1/audit.proto",
    "proto/enlace/v1/federation.proto",
    "proto/enlace/v1/agency.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let fds = protox::compile(PROTOS, [PROTO_DIR])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("enlace_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
