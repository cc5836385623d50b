//! What the binary-driving tests share.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the touchstone binary in `cwd` (no backtraces in its errors).
pub fn touchstone(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touchstone"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the touchstone binary runs")
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The committed small model (what the study tests enrol).
pub fn committed_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/socofing-small")
}

/// The one run folder under `root/out/<name>` (a test that ran one experiment).
pub fn only_run(root: &Path, name: &str) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("out").join(name))
        .unwrap_or_else(|e| panic!("no runs of {name}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}
