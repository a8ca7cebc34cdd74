//! Generates the prost types of `proto/kitsulan/v1/content.proto` with protox, in pure Rust, so a
//! build needs no `protoc`. Only that file.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let file = protos.join("kitsulan/v1/content.proto");
    println!("cargo::rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&protos])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
