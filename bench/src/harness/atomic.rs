//! Crash-safe file replacement: write a temporary file next to the target, flush it to
//! disk, then rename it over the target (atomic on POSIX file systems) and sync the
//! folder. A process killed at any point leaves either the old file or the new one, never
//! a truncated mix — so a killed run still resumes with every row it had.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Environment variable that makes [`write`] abort the process after the temporary file
/// is on disk and before the rename — the worst moment to be killed. Tests set it to
/// `FILE` or `FILE:N` (crash on the N-th replacement of FILE in this process, e.g.
/// `manifest.json:2`); nothing else does.
pub const CRASH_BEFORE_RENAME: &str = "TOUCHSTONE_TEST_CRASH_BEFORE_RENAME";

fn crash_requested(name: &std::ffi::OsStr) -> bool {
    static WRITES: std::sync::Mutex<Vec<(std::ffi::OsString, usize)>> =
        std::sync::Mutex::new(Vec::new());
    let Some(spec) = std::env::var_os(CRASH_BEFORE_RENAME) else {
        return false;
    };
    let spec = spec.to_string_lossy().to_string();
    let (file, nth) = match spec.split_once(':') {
        Some((f, n)) => (f.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if name != file.as_str() {
        return false;
    }
    let mut writes = WRITES.lock().unwrap_or_else(|p| p.into_inner());
    let count = match writes.iter_mut().find(|(n, _)| n == name) {
        Some((_, c)) => {
            *c += 1;
            *c
        }
        None => {
            writes.push((name.to_os_string(), 1));
            1
        }
    };
    count == nth
}

/// Replaces `path` with `bytes` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    // Unique per process, so two writers never share (and rename) one temporary.
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    if crash_requested(name) {
        std::process::abort();
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("replacing {} with {}", path.display(), tmp.display()))?;
    // The rename itself lives in the folder's metadata.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, "old contents that are longer").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
    }
}
