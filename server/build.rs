//! Embeds the built PWA (`pwa/dist`) into the binary, so the single `kitsulan` file is all a
//! Lite install needs. Writes `$OUT_DIR/pwa_assets.rs`: a sorted table of (path, bytes,
//! content type, ETag). Without a build of the PWA the table holds one page that says so.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let pwa = manifest.join("../pwa");
    let dist = pwa.join("dist");
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
        writeln!(
            code,
            "    Asset {{ path: {path:?}, bytes: include_bytes!({file:?}), content_type: {ct:?}, etag: \"\\\"{hash:016x}\\\"\" }},",
            file = file.display().to_string(),
            ct = content_type(path),
            hash = hasher.finish(),
        )?;
    }
    code.push_str("];\n");
    std::fs::write(out.join("pwa_assets.rs"), code)?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
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
