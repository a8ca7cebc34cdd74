//! Declares the `fuzzing` cfg that cargo-fuzz sets (crypto/fuzz), so rustc's check-cfg knows it.
//! The Content types come from the `kitsulan-content` crate.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
