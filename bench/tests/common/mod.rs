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
