//! The server's layers point inward (see the doc of `server/src/lib.rs`): `commands` ->
//! `transport` -> `services` -> the leaf modules (`bus`, `events`, `store`, `blobs`, `mail`, `tls`, `webpush`,
//! `config`, `ids`, `data_dir`, `telemetry`). A module may use its own layer and the layers
//! inside it, never one outside: the bus does not know the services that publish on it, and the
//! services do not know the wire protocols that call them.
//!
//! This test reads the source tree and fails on any `crate::…` path (in a `use` or in code) that
//! reaches outward, so a new upward import is caught when it is written, not when it has grown
//! into a cycle.

use std::path::{Path, PathBuf};

/// Every top-level module of the server crate and its layer: higher layers may use lower ones,
/// never the other way round. A new module must be given a layer here (and in `lib.rs`'s doc).
const LAYERS: &[(&str, u8)] = &[
    ("commands", 3),
    ("transport", 2),
    ("tls", 2),
    ("services", 1),
    ("bus", 0),
    ("events", 0),
    ("store", 0),
    ("blobs", 0),
    ("mail", 0),
    ("webpush", 0),
    ("config", 0),
    ("ids", 0),
    ("data_dir", 0),
    ("telemetry", 0),
    ("tls", 0),
];

/// Upward imports that another change of the same restructuring removes: (file, the module it
/// uses, why it is still here). An entry that no longer matches fails the test, so this list
/// only shrinks.
const NOT_YET: &[(&str, &str, &str)] = &[];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

#[test]
fn layers_point_inward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), src.display());

    let mut wrong = Vec::new();
    let mut still_needed = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        let module = module_path(relative);
        let Some(top) = module.first() else { continue }; // lib.rs, main.rs: the crate root
        let Some(own) = layer(top) else {
            wrong.push(format!("{}: module `{top}` has no layer in tests/layers.rs", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for used in crate_modules_used(&code_only(&text), module.len()) {
            match layer(&used) {
                Some(theirs) if theirs > own => {
                    let path = relative.to_string_lossy().replace('\\', "/");
                    if NOT_YET.iter().any(|(file, module, _)| *file == path && *module == used) {
                        still_needed.push((path, used));
                        continue;
                    }
                    wrong
                        .push(format!("{path}: `{top}` (layer {own}) uses `crate::{used}` (layer {theirs})"));
                }
                _ => {}
            }
        }
    }
    for (file, module, _) in NOT_YET {
        if !still_needed.iter().any(|(f, m)| f == file && m == module) {
            wrong.push(format!("{file} no longer uses `crate::{module}`: remove it from NOT_YET"));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports that point outward:\n  {}", wrong.join("\n  "));
}

/// The checker itself finds what it must, so the test above cannot pass by reading nothing.
#[test]
fn the_checker_sees_paths_in_every_form() {
    let found = |code: &str, depth| {
        let mut used = crate_modules_used(&code_only(code), depth);
        used.sort();
        used.dedup();
        used
    };
    assert_eq!(found("use crate::services::calls::CallEvent;", 1), ["services"]);
    assert_eq!(found("use crate::{ids::AccountId, transport};", 1), ["ids", "transport"]);
    assert_eq!(found("use crate :: {\n  commands,\n  bus::{Bus, Notice} };", 1), ["bus", "commands"]);
    assert_eq!(found("let s = crate::services::AttachmentSettings { max: 1 };", 2), ["services"]);
    assert_eq!(found("use super::super::services::Hub;", 2), ["services"]);
    assert_eq!(found("use super::services::Hub;", 2), Vec::<String>::new(), "a sibling, not the root");
    assert_eq!(found("use super::transport;", 1), ["transport"]);
    // Comments and strings are not code.
    assert_eq!(
        found("// see crate::services\n/* crate::commands */ let u = \"crate::transport\";", 1),
        Vec::<String>::new()
    );
    assert_eq!(found("let u = r#\"crate::transport\"#; let c = '\"'; use crate::bus;", 1), ["bus"]);
    assert_eq!(found("fn f<'a>(x: &'a str) { crate::mail::send(x) }", 1), ["mail"]);
    assert_eq!(found("let q = '\\''; let s = br\"crate::commands\"; crate::ids::new()", 1), ["ids"]);
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `bus.rs` -> `[bus]`, `services/delivery/hub.rs` -> `[services, delivery, hub]`,
/// `services/mod.rs` -> `[services]`, `lib.rs` -> `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The source with comments, string and character literals blanked out.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match (c, next) {
            ('/', Some('/')) => {
                while chars.get(i).is_some_and(|c| *c != '\n') {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while let Some(&c) = chars.get(i) {
                    match (c, chars.get(i + 1).copied()) {
                        ('/', Some('*')) => {
                            depth += 1;
                            i += 2;
                        }
                        ('*', Some('/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                out.push(' ');
            }
            ('r', Some('#' | '"')) if !ident_before(&chars, i) => {
                // A raw string: r"…", r#"…"#, …
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push(c);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len() {
                    if chars[i] == '"'
                        && chars[i + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes
                    {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                out.push_str("\"\"");
            }
            ('"', _) => {
                i += 1;
                while let Some(&c) = chars.get(i) {
                    i += if c == '\\' { 2 } else { 1 };
                    if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            // A character literal ('x', '\n', '\''), not a lifetime ('a).
            ('\'', Some('\\')) => {
                i += 3;
                while chars.get(i).is_some_and(|c| *c != '\'') {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            ('\'', Some(_)) if chars.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push_str("' '");
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Whether an identifier ends just before `i` (so an `r` there is not a raw string's), a
/// byte-string `b` aside.
fn ident_before(chars: &[char], i: usize) -> bool {
    let ident =
        |at: Option<usize>| at.and_then(|at| chars.get(at)).is_some_and(|c| c.is_alphanumeric() || *c == '_');
    match i.checked_sub(1).and_then(|at| chars.get(at)) {
        Some('b') => ident(i.checked_sub(2)),
        _ => ident(i.checked_sub(1)),
    }
}

/// The top-level modules that `code` (of a file `depth` modules below the crate root) names
/// through `crate::…` or through enough `super::` to reach the root.
fn crate_modules_used(code: &str, depth: usize) -> Vec<String> {
    // Tokens: identifiers, `::` and single punctuation, whitespace dropped.
    let mut tokens: Vec<String> = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            i += 1;
        }
    }
    let mut used = Vec::new();
    let mut t = 0;
    while t < tokens.len() {
        // `crate::` or `super::` repeated `depth` times (not preceded by another path segment).
        let after_path = t > 0 && tokens[t - 1] == "::";
        let root_end = if after_path {
            None
        } else if tokens[t] == "crate" {
            Some(t + 1)
        } else {
            let mut s = t;
            let mut supers = 0;
            while tokens.get(s).is_some_and(|x| x == "super") && tokens.get(s + 1).is_some_and(|x| x == "::")
            {
                supers += 1;
                s += 2;
            }
            (supers > 0 && supers == depth).then(|| s - 1)
        };
        let Some(end) = root_end else {
            t += 1;
            continue;
        };
        if tokens.get(end).is_some_and(|x| x == "::") {
            match tokens.get(end + 1).map(String::as_str) {
                Some("{") => {
                    // A group: every first segment at its top level.
                    let mut nesting = 0;
                    let mut expect_name = true;
                    for token in &tokens[end + 2..] {
                        match token.as_str() {
                            "{" => nesting += 1,
                            "}" if nesting == 0 => break,
                            "}" => nesting -= 1,
                            "," if nesting == 0 => expect_name = true,
                            name if expect_name && nesting == 0 => {
                                used.push(name.to_owned());
                                expect_name = false;
                            }
                            _ => {}
                        }
                    }
                }
                Some(name) => used.push(name.to_owned()),
                None => {}
            }
        }
        t = end;
    }
    used
}
