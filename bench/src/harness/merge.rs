//! `touchstone merge RUN_DIR`: the shards of a sharded run (`RUN_DIR/shards/I-of-N`, each
//! written by `touchstone run --shard I/N --run-dir RUN_DIR`) become one run folder —
//! rows.jsonl, rows.csv / rows.parquet, summary.md, figures and a manifest listing the
//! shards — after checking that every point of the config is there exactly once.

use super::manifest::Manifest;
use super::report;
use super::rows::{self, Row};
use super::shard::{self, Shard};
use super::sweep::{self, Point};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What a merge produced.
#[derive(Debug)]
pub struct Merged {
    pub shards: usize,
    pub rows: usize,
}

/// One shard folder as found.
struct Found {
    shard: Shard,
    dir: PathBuf,
    manifest: Manifest,
}

/// Merges the shards of `run_dir` into it and renders the report.
pub fn merge(run_dir: &Path) -> Result<Merged> {
    let found = find_shards(run_dir)?;
    let first = &found[0];
    let count = first.shard.count;
    for f in &found[1..] {
        if f.shard.count != count {
            bail!(
                "{} holds shards of different splits: {} and {}",
                run_dir.join("shards").display(),
                first.shard,
                f.shard
            );
        }
        if f.manifest.config_hash != first.manifest.config_hash {
            bail!(
                "shard {} ({}) was run from another config (hash {}) than shard {} (hash {})",
                f.shard,
                f.dir.display(),
                f.manifest.config_hash,
                first.shard,
                first.manifest.config_hash
            );
        }
    }
    let present: HashSet<usize> = found.iter().map(|f| f.shard.index).collect();
    if let Some(missing) = (1..=count).find(|i| !present.contains(i)) {
        let shard = Shard {
            index: missing,
            count,
        };
        bail!(
            "shard {shard} is missing ({} does not exist): run it with `touchstone run {} --shard {shard} --run-dir {}`",
            shard.folder(run_dir).display(),
            first.manifest.config_path,
            run_dir.display()
        );
    }
    // Rows of different builds are not one sweep. The build is what `build.rs` recorded
    // (touchstone, rustc and the locked crate versions); the checkout's git state at run
    // time says nothing about the binary, so it is kept per attempt but not compared.
    for f in &found[1..] {
        if f.manifest.versions != first.manifest.versions {
            let differing = f
                .manifest
                .versions
                .iter()
                .find(|v| !first.manifest.versions.contains(v))
                .map_or_else(
                    || "a missing entry".to_string(),
                    |(k, v)| format!("{k} {v}"),
                );
            bail!(
                "shard {} was run by another build than shard {} ({differing}); delete {} and run that shard again with the build the others used",
                f.shard,
                first.shard,
                f.dir.display()
            );
        }
    }
    for (what, pick) in [
        (
            "model",
            (|m: &Manifest| m.model.clone()) as fn(&Manifest) -> _,
        ),
        ("dataset", |m: &Manifest| m.dataset.clone()),
    ] {
        let inputs: Vec<_> = found
            .iter()
            .filter_map(|f| pick(&f.manifest).map(|i| (f.shard, i)))
            .collect();
        if let Some((other, _)) = inputs.iter().find(|(_, i)| *i != inputs[0].1) {
            bail!(
                "shards {} and {other} read different {what}s ({:?} and {:?}); rerun them on the same {what}",
                inputs[0].0,
                inputs[0].1,
                inputs.iter().find(|(s, _)| s == other).map(|(_, i)| i)
            );
        }
    }

    let config = super::config::parse_stored(
        &first.manifest.config,
        Path::new(&first.manifest.config_path),
    )?;
    let points = sweep::expand(&config)?;
    let keys: HashSet<String> = points.iter().map(Point::key).collect();
    let owner: HashMap<String, usize> = points
        .iter()
        .map(Point::key)
        .zip(shard::assign(&points, count))
        .collect();
    let expect = rows::Expect {
        config_hash: &first.manifest.config_hash,
        keys: &keys,
    };
    // key → (shard, line, row)
    let mut merged: HashMap<String, (Shard, usize, Row)> = HashMap::new();
    for f in &found {
        let log_path = f.dir.join("rows.jsonl");
        let log = rows::read_log(&log_path, &expect)?;
        if let Some(line) = log.torn {
            bail!(
                "{}:{line}: a torn last row (shard {} was killed while writing it); rerun the shard to repair it",
                log_path.display(),
                f.shard
            );
        }
        for (i, row) in log.rows.into_iter().enumerate() {
            let line = i + 1;
            if owner[&row.key] != f.shard.index {
                bail!(
                    "{}:{line}: point `{}` belongs to shard {}/{count}, not to shard {}",
                    log_path.display(),
                    row.key,
                    owner[&row.key],
                    f.shard
                );
            }
            if let Some((other, other_line, _)) = merged.get(&row.key) {
                bail!(
                    "point `{}` has two rows: shard {other} line {other_line} and shard {} line {line}",
                    row.key,
                    f.shard
                );
            }
            merged.insert(row.key.clone(), (f.shard, line, row));
        }
    }
    let missing: Vec<&Point> = points
        .iter()
        .filter(|p| !merged.contains_key(&p.key()))
        .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .take(5)
            .map(|p| format!("`{}` (shard {}/{count})", p.key(), owner[&p.key()]))
            .collect();
        let shards: BTreeMap<usize, ()> = missing.iter().map(|p| (owner[&p.key()], ())).collect();
        bail!(
            "{} of {} points have no row: {}{}; rerun shard(s) {} (a rerun resumes where the shard stopped)",
            missing.len(),
            points.len(),
            names.join(", "),
            if missing.len() > names.len() { ", …" } else { "" },
            shards
                .keys()
                .map(|i| format!("{i}/{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // A merged folder may be merged again (after a shard was rerun), but a folder holding
    // an ordinary run is never overwritten.
    if let Some(existing) = Manifest::read(run_dir)? {
        if existing.shards.is_empty() {
            bail!(
                "{} already holds an unsharded run; merge into the folder the shards were run with",
                run_dir.display()
            );
        }
    }

    // Rows in sweep order, as an unsharded run appends them.
    let mut log = String::new();
    let mut ordered = Vec::with_capacity(points.len());
    for p in &points {
        let (_, _, row) = &merged[&p.key()];
        log.push_str(&serde_json::to_string(row)?);
        log.push('\n');
        ordered.push(row);
    }
    // The accuracy runs' verification scores (the DET figure's input), from the shard
    // that ran each scheme configuration.
    let mut copied = HashSet::new();
    for row in &ordered {
        let name = report::scores_file(&row.point);
        if !copied.insert(name.clone()) {
            continue;
        }
        let owner_dir = found
            .iter()
            .find(|f| f.shard == merged[&row.key].0)
            .map(|f| f.dir.clone())
            .expect("the row's shard was found");
        let source = owner_dir.join(&name);
        match std::fs::read(&source) {
            Ok(bytes) => super::atomic::write(&run_dir.join(&name), &bytes)
                .with_context(|| format!("copying {}", source.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", source.display())),
        }
    }
    super::atomic::write(&run_dir.join("rows.jsonl"), log.as_bytes())
        .with_context(|| format!("writing {}", run_dir.join("rows.jsonl").display()))?;

    let mut man = first.manifest.clone();
    man.shard = None;
    man.shards = found
        .iter()
        .filter_map(|f| f.manifest.shard.clone())
        .collect();
    let mut machines: Vec<String> = found.iter().map(|f| f.manifest.machine.clone()).collect();
    machines.dedup();
    machines.sort();
    machines.dedup();
    man.machine = machines.join("; ");
    man.model = found.iter().find_map(|f| f.manifest.model.clone());
    man.dataset = found.iter().find_map(|f| f.manifest.dataset.clone());
    man.params = super::run::param_records(&points)?;
    man.started = found
        .iter()
        .map(|f| f.manifest.started.clone())
        .min()
        .unwrap_or_default();
    // The shards' wall times added up: the sweep's cost, not its elapsed time.
    let wall: f64 = found.iter().map(|f| f.manifest.wall_s).sum();
    man.finish(wall, ordered.len());
    man.write(run_dir)?;
    report::render(run_dir)?;
    Ok(Merged {
        shards: found.len(),
        rows: ordered.len(),
    })
}

/// The shard folders under `run_dir/shards`, sorted by index; each must be named
/// `I-of-N` and hold a shard manifest that says the same.
fn find_shards(run_dir: &Path) -> Result<Vec<Found>> {
    let shards_dir = run_dir.join("shards");
    let entries = std::fs::read_dir(&shards_dir).with_context(|| {
        format!(
            "reading {} (is {} a sharded run folder, made by `touchstone run --shard I/N --run-dir {}`?)",
            shards_dir.display(),
            run_dir.display(),
            run_dir.display()
        )
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let dir = entry
            .with_context(|| format!("reading {}", shards_dir.display()))?
            .path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let shard: Shard = name
            .split_once("-of-")
            .map(|(i, n)| format!("{i}/{n}"))
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!(
                    "{}: not a shard folder (expected I-of-N, e.g. 2-of-8)",
                    dir.display()
                )
            })?;
        let manifest = Manifest::read(&dir)?.with_context(|| {
            format!(
                "shard {shard}: {} has no manifest.json (the shard never started)",
                dir.display()
            )
        })?;
        match &manifest.shard {
            Some(record) if record.shard == shard => {}
            other => bail!(
                "{}: its manifest records shard {:?}, not {shard}",
                dir.display(),
                other.as_ref().map(|r| r.shard.to_string())
            ),
        }
        found.push(Found {
            shard,
            dir,
            manifest,
        });
    }
    if found.is_empty() {
        bail!("{} holds no shards", shards_dir.display());
    }
    found.sort_by_key(|f| f.shard.index);
    if let Some(w) = found.windows(2).find(|w| w[0].shard == w[1].shard) {
        bail!("shard {} appears twice", w[0].shard);
    }
    Ok(found)
}
