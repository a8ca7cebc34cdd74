//! Generates the prost types of `proto/kitsulan/v1/content.proto` (the typed message Content,
//! `src/content/`) with protox, in pure Rust, so a build needs no `protoc`. Only that file: the
//! crate knows nothing else of the server's API. Also declares the `fuzzing` cfg that
//! cargo-fuzz sets (crypto/fuzz), so rustc's check-cfg knows it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    let protos = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let file = protos.join("kitsulan/v1/content.proto");
    println!("cargo::rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&protos])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
