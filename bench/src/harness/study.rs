//! What the studies that are not sweeps (`bpkem:`, `compare:`) share: recognising their
//! section and reading their YAML with errors that name the file, line and field.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::fmt::Write as _;
use std::path::Path;

/// Which study a config is, by its section — `None` for a sweep. Studies run whole: no
/// shards, resume or row limits.
pub fn kind(text: &str) -> Option<&'static str> {
    if super::compare_study::is_study(text) {
        Some("a scheme comparison")
    } else if super::pipeline_study::is_study(text) {
        Some("a preprocessing comparison")
    } else if super::bpkem_study::is_study(text) {
        Some("a BPKEM study")
    } else {
        None
    }
}

/// Runs the study `text` is (see [`kind`]).
pub fn run(path: &Path, text: &str) -> Result<()> {
    if super::compare_study::is_study(text) {
        super::compare_study::run(path, text)?;
    } else if super::pipeline_study::is_study(text) {
        super::pipeline_study::run(path, text)?;
    } else {
        super::bpkem_study::run(path, text)?;
    }
    Ok(())
}

/// Does this YAML text have the top-level key `section`?
pub fn has_section(text: &str, section: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.as_mapping().map(|m| m.contains_key(section)))
        .unwrap_or(false)
}

/// Deserializes `text` (read from `path`); an error says `path:line:column: field `…`: why`.
pub fn deserialize<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let at = inner
            .location()
            .map_or(String::new(), |l| format!(":{}:{}", l.line(), l.column()));
        anyhow::anyhow!("{}{at}: field `{field}`: {inner}", path.display())
    })
}

/// Appends the figure list to a study's summary and writes `dir/summary.md`.
pub fn write_summary(dir: &Path, mut summary: String, figures: &[String]) -> Result<()> {
    writeln!(summary, "## Figures\n")?;
    for f in figures {
        writeln!(summary, "- [{f}]({f})")?;
    }
    let path = dir.join("summary.md");
    std::fs::write(&path, summary).with_context(|| format!("writing {}", path.display()))
}
