//! Embeds the built PWA (`pwa/dist`, or `$KITSULAN_PWA_DIST`) into the binary, so the single `kitsulan` file is all a
//! Lite install needs. Writes `$OUT_DIR/pwa_assets.rs`: a sorted table of (path, bytes,
//! content type, ETag, and the brotli and gzip copies). Without a build of the PWA the table
//! holds one page that says so.
//!
//! The compressed copies (`file.br`, `file.gz`) are made by the PWA build
//! (`pwa/scripts/compress.mjs`, Node's native zlib at the highest levels, a second or two),
//! not here: a compressor in this script would be a new crate compiled unoptimised into every
//! build of the server and would run again on every rebuild. This script only takes a copy
//! that is of a compressible type, smaller than the file, and not older than it.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let pwa = manifest.join("../pwa");
    // A build of the PWA made elsewhere (a packager's, or a copy kept still while the PWA
    // is being worked on) instead of `pwa/dist`.
    println!("cargo:rerun-if-env-changed=KITSULAN_PWA_DIST");
    let dist = std::env::var_os("KITSULAN_PWA_DIST").map_or_else(|| pwa.join("dist"), PathBuf::from);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        collect(&dist, &dist, &mut files)?;
    } else {
        // Watch the PWA folder so that a later `npm run build` is picked up.
        println!("cargo:rerun-if-changed={}", pwa.display());
        let page = out.join("index.html");
        std::fs::write(&page, NOT_BUILT_PAGE)?;
        files.push(("/index.html".to_owned(), page));
    }
    files.sort();

    let mut code = String::from("static ASSETS: &[Asset] = &[\n");
    for (path, file) in &files {
        let bytes = std::fs::read(file)?;
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        let ct = content_type(path);
        let mut encoded = String::new();
        for (field, ext) in [("br", "br"), ("gzip", "gz")] {
            match compressed_copy(file, bytes.len(), ct, ext)? {
                Some(copy) => write!(
                    encoded,
                    " {field}: Some(Encoded {{ bytes: include_bytes!({copy:?}), etag: \"\\\"{hash:016x}-{ext}\\\"\" }}),",
                    copy = copy.display().to_string(),
                )?,
                None => write!(encoded, " {field}: None,")?,
            }
        }
        writeln!(
            code,
            "    Asset {{ path: {path:?}, bytes: include_bytes!({file:?}), content_type: {ct:?}, etag: \"\\\"{hash:016x}\\\"\",{encoded} }},",
            file = file.display().to_string(),
        )?;
    }
    code.push_str("];\n");
    std::fs::write(out.join("pwa_assets.rs"), code)?;
    Ok(())
}

/// `file.br` or `file.gz` when it is worth sending: a compressible type, smaller than the file,
/// and written after it (a stale copy of an older build is ignored).
fn compressed_copy(
    file: &Path,
    len: usize,
    content_type: &str,
    ext: &str,
) -> std::io::Result<Option<PathBuf>> {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".{ext}"));
    let copy = PathBuf::from(name);
    let Ok(meta) = std::fs::metadata(&copy) else { return Ok(None) };
    let fresh = meta.modified()? >= std::fs::metadata(file)?.modified()?;
    let smaller = usize::try_from(meta.len()).is_ok_and(|n| n < len);
    Ok((compressible(content_type) && fresh && smaller).then_some(copy))
}

/// Text, JSON, SVG and WebAssembly; not PNG, WebP or WOFF2, which are compressed already.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || [
            "application/json",
            "application/manifest+json",
            "image/svg+xml",
            "application/wasm",
            "image/x-icon",
        ]
        .contains(&content_type)
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // `x.br` and `x.gz` beside `x` are its compressed copies, not files of their own.
        let copy_of = path.extension().filter(|e| *e == "br" || *e == "gz").and_then(|_| {
            let original = path.with_extension("");
            original.is_file().then_some(original)
        });
        if copy_of.is_some() {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url: Vec<String> =
                rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

// No inline style or script: the Content-Security-Policy (transport/pwa.rs) allows neither.
const NOT_BUILT_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>KitsuLAN</title></head>
<body>
<h1>KitsuLAN is running</h1>
<p>This binary was built without the web app. Build it with <code>make run</code>
(or <code>npm ci &amp;&amp; npm run build</code> in <code>pwa/</code>, then rebuild the server).</p>
</body>
</html>
"#;
