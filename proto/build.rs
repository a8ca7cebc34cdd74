//! Compiles every `.proto` file under `kitsulan/` with protox (pure Rust, so no `protoc` is
//! needed) and generates prost messages plus tonic clients and servers. The encoded descriptor
//! set is written too: the server serves it through gRPC reflection. The internal schemas
//! under `kitsulan/internal/` (node to node, not client API) are generated like the rest but
//! left out of that set, so reflection shows clients only what they can call.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("kitsulan"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=kitsulan");

    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut public = fds.clone();
    public.file.retain(|file| !file.name().starts_with("kitsulan/internal/"));
    std::fs::write(out.join("kitsulan_descriptor.bin"), prost::Message::encode_to_vec(&public))?;
    // `content.proto` (what a message says: inside the encryption of an E2EE conversation, as
    // it is in a cloud one) is generated once, in the `kitsulan-content` crate, which the
    // crypto crate's codec uses too; the API refers to those types.
    // A Message and its Content are boxed where they sit inside other messages: they are large,
    // and the gateway's event oneof would otherwise take their size for every event.
    let mut config = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .boxed(".kitsulan.v1.Message.content")
        .boxed(".kitsulan.v1.MessageEvent.message");
    for name in CONTENT_TYPES {
        config = config.extern_path(format!(".kitsulan.v1.{name}"), format!("::kitsulan_content::{name}"));
    }
    config.compile_fds(fds)?;
    Ok(())
}

/// The messages and enums of `kitsulan/v1/content.proto`.
const CONTENT_TYPES: [&str; 12] = [
    "Content",
    "Reply",
    "Forwarded",
    "Mention",
    "TextStyle",
    "TextSpan",
    "TextContent",
    "FileThumbnail",
    "FileContent",
    "Reaction",
    "Edit",
    "Deletion",
];

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
