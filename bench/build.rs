//! Records what the binary was built with, for run manifests: the compiler's own version
//! string and the locked versions of the crates that determine results, read from the
//! workspace's Cargo.lock (not typed in by hand, so they cannot go stale).

use std::path::Path;
use std::process::Command;

/// Crates whose versions a manifest reports.
const CRATES: [&str; 9] = [
    "fhe",
    "fhe-math",
    "burn",
    "burn-flex",
    "polars",
    "cudarc",
    "rayon",
    "image",
    "plotters",
];

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (rustc -V failed at build time)".into());
    println!("cargo:rustc-env=TOUCHSTONE_RUSTC={version}");

    let lock = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut found = Vec::new();
    // Cargo.lock: [[package]] blocks of `name = "…"` then `version = "…"`.
    let mut name: Option<&str> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("name = \"") {
            name = v.strip_suffix('"');
        } else if let (Some(n), Some(v)) = (name, line.strip_prefix("version = \"")) {
            if CRATES.contains(&n) {
                found.push(format!("{n}={}", v.trim_end_matches('"')));
            }
            name = None;
        }
    }
    println!("cargo:rustc-env=TOUCHSTONE_LOCKED={}", found.join(";"));
}
