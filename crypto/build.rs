//! Declares the `fuzzing` cfg that cargo-fuzz sets (crypto/fuzz), so rustc's check-cfg knows it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
