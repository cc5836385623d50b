//! `touchstone slurm`: a sweep as a Slurm job array (one task per shard, each running
//! `touchstone run --shard $SLURM_ARRAY_TASK_ID/N`) and a merge job that starts when every
//! task succeeded (`--dependency=afterok`). Slurm does the scheduling, retries and
//! accounting; touchstone only writes the scripts and, when asked, calls `sbatch`.
//!
//! Files, all under the run folder:
//! `slurm/array.sbatch`, `slurm/merge.sbatch`, `slurm/submit.sh` (both submissions with the
//! dependency, for submitting by hand), `slurm/submitted.json` (job ids, with `--submit`),
//! `logs/shard-<I>-of-<N>.out`, `logs/merge.out`, and the shards' own folders.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the scripts run and what they ask Slurm for.
#[derive(Clone, Debug)]
pub struct Request {
    /// The experiment config (absolute).
    pub config: PathBuf,
    /// The experiment's name (job names).
    pub name: String,
    /// The shared run folder (absolute; on storage every node sees).
    pub run_dir: PathBuf,
    /// The touchstone binary the tasks run (absolute; visible on every node).
    pub exe: PathBuf,
    /// Where the tasks start (relative paths in the config resolve from here).
    pub workdir: PathBuf,
    pub shards: usize,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
}

/// The written scripts.
#[derive(Clone, Debug)]
pub struct Scripts {
    pub array: PathBuf,
    pub merge: PathBuf,
    pub submit: PathBuf,
}

/// The request for `config_path`: the config is read and expanded here, on the submitting
/// machine, so a bad config fails now rather than in N tasks. Without `run_dir`, a new
/// `<outputs.dir>/<name>/<timestamp>-slurm` folder.
pub fn plan(
    config_path: &Path,
    run_dir: Option<&Path>,
    exe: Option<&Path>,
    resources: Resources,
) -> Result<Request> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    if let Some(kind) = super::study::kind(&text) {
        bail!(
            "{} is {kind}, not a sweep: it runs whole with `touchstone run`, not as shards",
            config_path.display()
        );
    }
    let (config, _) = super::config::read(config_path)?;
    if config.model.as_ref().is_some_and(|m| m.train.is_some()) {
        bail!(
            "{}: a sharded sweep cannot train its model (every task would train its own); \
             train it once with `touchstone train`, then set model.path",
            config_path.display()
        );
    }
    let points = super::sweep::expand(&config)?;
    if resources.shards > points.len() {
        bail!(
            "--shards {}: the sweep has only {} points",
            resources.shards,
            points.len()
        );
    }
    let absolute = |p: &Path| -> Result<PathBuf> {
        std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
    };
    let run_dir = match run_dir {
        Some(d) => absolute(d)?,
        None => absolute(
            &config
                .outputs
                .dir
                .join(&config.name)
                .join(format!("{}-slurm", super::manifest::timestamp())),
        )?,
    };
    if run_dir.join("manifest.json").exists() {
        bail!(
            "{} already holds a run; choose a new --run-dir",
            run_dir.display()
        );
    }
    let exe = match exe {
        Some(e) => absolute(e)?,
        None => std::env::current_exe().context("locating the touchstone binary")?,
    };
    Ok(Request {
        config: config_path
            .canonicalize()
            .with_context(|| format!("resolving {}", config_path.display()))?,
        name: config.name.clone(),
        run_dir,
        exe,
        workdir: std::env::current_dir().context("reading the current folder")?,
        shards: resources.shards,
        partition: resources.partition,
        time: resources.time,
        cpus_per_task: resources.cpus_per_task,
        mem: resources.mem,
    })
}

/// What the user asks Slurm for.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub shards: usize,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
}

/// Job ids of a submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submitted {
    pub array_job: String,
    pub merge_job: String,
    pub submitted: String,
}

/// A value that goes into an `#SBATCH` line: Slurm does not unquote those, so only plain
/// characters are allowed (a newline would start a new directive).
fn directive_value(what: &str, value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:,+-=".contains(c));
    if !ok {
        bail!("{what} `{value}`: only letters, digits and _.:,+-= are allowed (at most 128)");
    }
    Ok(value.to_string())
}

/// A path for an `#SBATCH --output` line: absolute, without whitespace or `%` (Slurm's
/// filename patterns) and valid UTF-8.
fn directive_path(what: &str, path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{what} {} is not valid UTF-8", path.display()))?;
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '%')
    {
        bail!("{what} `{s}`: Slurm's #SBATCH lines cannot hold whitespace or `%`; choose another folder");
    }
    Ok(s.to_string())
}

/// A word for the shell, quoted when needed.
fn shell(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    Ok(shlex::try_quote(s)
        .with_context(|| format!("{s} cannot be quoted for the shell"))?
        .into_owned())
}

/// The `#SBATCH` lines every job shares.
fn resources(request: &Request, cpus: Option<u32>) -> Result<String> {
    let mut s = String::new();
    if let Some(p) = &request.partition {
        writeln!(
            s,
            "#SBATCH --partition={}",
            directive_value("--partition", p)?
        )?;
    }
    if let Some(t) = &request.time {
        writeln!(s, "#SBATCH --time={}", directive_value("--time", t)?)?;
    }
    if let Some(c) = cpus {
        if c == 0 || c > 4096 {
            bail!("--cpus-per-task {c}: must be in 1..=4096");
        }
        writeln!(s, "#SBATCH --cpus-per-task={c}")?;
    }
    if let Some(m) = &request.mem {
        writeln!(s, "#SBATCH --mem={}", directive_value("--mem", m)?)?;
    }
    Ok(s)
}

/// Writes the three scripts into `<run_dir>/slurm/` and makes `<run_dir>/logs/`.
pub fn write_scripts(request: &Request) -> Result<Scripts> {
    for (what, p) in [
        ("the config", &request.config),
        ("the run folder", &request.run_dir),
        ("the touchstone binary", &request.exe),
        ("the working folder", &request.workdir),
    ] {
        if !p.is_absolute() {
            bail!("{what} {} must be an absolute path", p.display());
        }
    }
    if request.shards == 0 || request.shards > super::shard::MAX_SHARDS {
        bail!(
            "--shards {}: must be in 1..={}",
            request.shards,
            super::shard::MAX_SHARDS
        );
    }
    let n = request.shards;
    let name = directive_value("the experiment name", &request.name)?;
    let logs = request.run_dir.join("logs");
    let slurm = request.run_dir.join("slurm");
    let logs_s = directive_path("the run folder", &logs)?;
    // Every value is checked before anything is written.
    resources(request, request.cpus_per_task)?;
    for dir in [&logs, &slurm] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (exe, config, run_dir, workdir) = (
        shell(&request.exe)?,
        shell(&request.config)?,
        shell(&request.run_dir)?,
        shell(&request.workdir)?,
    );

    let array = format!(
        "#!/bin/bash
# touchstone sweep `{name}` as a Slurm job array: task I runs shard I of {n}.
# Written by `touchstone slurm`; submit with slurm/submit.sh (array + merge job).
# A failed task resumes where it stopped when resubmitted alone:
#   sbatch --array=I {array_path}
#   sbatch --dependency=afterok:<that job id> {merge_path}
#SBATCH --job-name=touchstone-{name}
#SBATCH --array=1-{n}
#SBATCH --output={logs_s}/shard-%a-of-{n}.out
{res}
set -euo pipefail
cd {workdir}
exec {exe} run {config} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" --run-dir {run_dir} --quiet
",
        array_path = shell(&slurm.join("array.sbatch"))?,
        merge_path = shell(&slurm.join("merge.sbatch"))?,
        res = resources(request, request.cpus_per_task)?.trim_end(),
    );
    let merge = format!(
        "#!/bin/bash
# Merges the {n} shards of touchstone sweep `{name}` into one run folder (rows, summary,
# figures, manifest). Submitted with --dependency=afterok on the array job.
#SBATCH --job-name=touchstone-{name}-merge
#SBATCH --output={logs_s}/merge.out
{res}
set -euo pipefail
cd {workdir}
exec {exe} merge {run_dir}
",
        res = resources(request, None)?.trim_end(),
    );
    let submit = format!(
        "#!/bin/bash
# Submits the array, then the merge job that waits for every task to succeed; prints both
# job ids. (`touchstone slurm --submit` does the same.)
set -euo pipefail
array=$(sbatch --parsable {array_path})
array=${{array%%;*}}
merge=$(sbatch --parsable --dependency=afterok:$array --kill-on-invalid-dep=yes {merge_path})
merge=${{merge%%;*}}
echo \"array job $array, merge job $merge\"
",
        array_path = shell(&slurm.join("array.sbatch"))?,
        merge_path = shell(&slurm.join("merge.sbatch"))?,
    );
    let scripts = Scripts {
        array: slurm.join("array.sbatch"),
        merge: slurm.join("merge.sbatch"),
        submit: slurm.join("submit.sh"),
    };
    for (path, text) in [
        (&scripts.array, array),
        (&scripts.merge, merge),
        (&scripts.submit, submit),
    ] {
        super::atomic::write(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        set_executable(path)?;
    }
    Ok(scripts)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> Result<()> {
    Ok(())
}

/// `sbatch --parsable ARGS…`: the job id (the part before `;cluster`).
fn sbatch(args: &[&str]) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("running sbatch (is this a Slurm login node with sbatch on PATH?)")?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed `{}`, not a job id", text.trim());
    }
    Ok(id)
}

/// Submits the array, then the merge job with `afterok` on it (cancelled by Slurm if a
/// task fails, so a failed sweep never merges); records the ids in `slurm/submitted.json`.
pub fn submit(request: &Request, scripts: &Scripts) -> Result<Submitted> {
    let array = scripts.array.to_str().context("script path is not UTF-8")?;
    let merge = scripts.merge.to_str().context("script path is not UTF-8")?;
    let path = request.run_dir.join("slurm").join("submitted.json");
    let record = |s: &Submitted| -> Result<()> {
        super::atomic::write(&path, serde_json::to_string_pretty(s)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    };
    let array_job = sbatch(&[array])?;
    // Recorded at once: if the merge submission fails, the running array is not lost.
    let mut submitted = Submitted {
        array_job: array_job.clone(),
        merge_job: String::new(),
        submitted: super::manifest::timestamp(),
    };
    record(&submitted)?;
    let dependency = format!("--dependency=afterok:{array_job}");
    submitted.merge_job =
        sbatch(&[&dependency, "--kill-on-invalid-dep=yes", merge]).with_context(|| {
            format!(
                "array job {array_job} is submitted and running, but its merge job is not: \
                 submit it with `sbatch {dependency} --kill-on-invalid-dep=yes {merge}` \
                 (or cancel the array with `scancel {array_job}`)"
            )
        })?;
    record(&submitted)?;
    Ok(submitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path) -> Request {
        Request {
            config: PathBuf::from("/work/configs/my sweep.yaml"),
            name: "users-sweep".into(),
            run_dir: dir.to_path_buf(),
            exe: PathBuf::from("/opt/touchstone/bin/touchstone"),
            workdir: PathBuf::from("/work"),
            shards: 3,
            partition: Some("short".into()),
            time: Some("01:30:00".into()),
            cpus_per_task: Some(2),
            mem: Some("4G".into()),
        }
    }

    #[test]
    fn scripts_run_one_shard_per_task_and_merge_after() {
        let tmp = tempfile::tempdir().unwrap();
        let scripts = write_scripts(&request(tmp.path())).unwrap();
        let array = std::fs::read_to_string(&scripts.array).unwrap();
        assert!(array.contains("#SBATCH --array=1-3\n"));
        assert!(array.contains("#SBATCH --partition=short\n"));
        assert!(array.contains("#SBATCH --time=01:30:00\n"));
        assert!(array.contains("#SBATCH --cpus-per-task=2\n"));
        assert!(array.contains("#SBATCH --mem=4G\n"));
        assert!(array.contains(&format!(
            "#SBATCH --output={}/logs/shard-%a-of-3.out\n",
            tmp.path().display()
        )));
        // The config path has a space: quoted for the shell.
        assert!(array.contains(&format!(
            "exec /opt/touchstone/bin/touchstone run '/work/configs/my sweep.yaml' --shard \"${{SLURM_ARRAY_TASK_ID}}/3\" --run-dir {} --quiet\n",
            tmp.path().display()
        )));
        let merge = std::fs::read_to_string(&scripts.merge).unwrap();
        assert!(merge.contains(&format!(
            "exec /opt/touchstone/bin/touchstone merge {}\n",
            tmp.path().display()
        )));
        assert!(!merge.contains("--cpus-per-task"));
        let submit = std::fs::read_to_string(&scripts.submit).unwrap();
        assert!(submit.contains("--dependency=afterok:$array --kill-on-invalid-dep=yes"));
    }

    #[test]
    fn refuses_what_would_break_a_directive() {
        let tmp = tempfile::tempdir().unwrap();
        for edit in [
            (|r: &mut Request| r.partition = Some("short\n#SBATCH --uid=0".into()))
                as fn(&mut Request),
            |r| r.time = Some("1 hour".into()),
            |r| r.mem = Some(String::new()),
            |r| r.cpus_per_task = Some(0),
            |r| r.shards = 0,
            |r| r.config = PathBuf::from("relative.yaml"),
        ] {
            let mut r = request(tmp.path());
            edit(&mut r);
            assert!(write_scripts(&r).is_err(), "{r:?} accepted");
        }
        let mut r = request(&tmp.path().join("with space"));
        r.shards = 2;
        let e = write_scripts(&r).unwrap_err().to_string();
        assert!(e.contains("whitespace"), "{e}");
    }
}
