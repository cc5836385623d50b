//! `touchstone run`: expand the sweep, run every point not yet in rows.jsonl, then write
//! the tables, figures and manifest.

use super::config::{self, ExperimentConfig};
use super::rows::{self, AccuracyCols, Row, Stat, STAGES};
use super::shard::{self, Attempt, Shard, ShardRecord, SlurmIds};
use super::sweep::{self, Point};
use super::{machine, manifest, report};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::messages::Layout;
use protocol::roles::Client;
use protocol::transport::Fault;
use protocol::{
    build_matcher, MatchModel, ParamSpec, Reference, SchemeConfig, SchemeKind, SyntheticSpec,
    Tally, Workload,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;
use train::evaluation::{self, Accuracy, TestSet};

/// How to run.
pub struct RunOptions {
    /// Continue this run directory (or, when `Some(None)`, the newest one of the config).
    pub resume: Option<Option<PathBuf>>,
    /// Stop after this many new rows (as an interrupted run would); for tests and trials.
    pub max_rows: Option<usize>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Fault injection between main server and clusters (tests of the exactness gate).
    pub fault: Option<Fault>,
    /// Run only this shard's points, in its folder under the given shared run folder
    /// (`<run-dir>/shards/I-of-N`); a shard folder that exists is resumed.
    pub shard: Option<(Shard, PathBuf)>,
}

/// Runs `config_path`; returns the run directory.
pub fn run(config_path: &Path, options: &RunOptions) -> Result<PathBuf> {
    let start = Instant::now();
    let (config, text) = config::read(config_path)?;
    let points = sweep::expand(&config)
        .with_context(|| format!("expanding the sweep of {}", config_path.display()))?;
    let hash = manifest::hash(&text);
    // What only the model decides (does t hold every score, does the layout fit) is
    // checked for every point before anything is created — when the model is a folder;
    // a model this run trains is checked right after training, before the first point.
    let early_head = match config.model.as_ref().and_then(|m| m.path.as_ref()) {
        Some(path) => Some(head_of(path)?),
        None => None,
    };
    let trains = config.model.as_ref().is_some_and(|m| m.train.is_some());
    if trains && options.shard.is_some() {
        bail!(
            "{}: a sharded run cannot train its model (every shard would train its own); \
             train it once with `touchstone train`, then set model.path to the model folder",
            config_path.display()
        );
    }
    if !trains {
        preflight(&text, config_path, &points, early_head.as_ref())?;
    }
    let dir = match &options.shard {
        Some((shard, run_dir)) => {
            let dir = shard.folder(run_dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => run_folder(&config, options)?,
    };
    // One process per run folder: a second `run --resume` on it would append the same
    // points twice.
    let lock_path = dir.join(".lock");
    let lock = lock_file(&lock_path)?;
    lock.try_lock().map_err(|_| {
        anyhow!(
            "another touchstone process is running in {} (it holds {})",
            dir.display(),
            lock_path.display()
        )
    })?;
    // A shard folder that holds a manifest is resumed — decided under the lock, so two
    // first attempts of one shard cannot both start it afresh.
    let resume = match &options.shard {
        Some(_) => dir.join("manifest.json").exists(),
        None => options.resume.is_some(),
    };
    let mut man = match manifest::Manifest::read(&dir)? {
        Some(m) if resume => {
            if m.config_hash != hash {
                bail!(
                    "{} was made from another version of the config (hash {} ≠ {}); start a new run",
                    dir.display(),
                    m.config_hash,
                    hash
                );
            }
            // A shard's rows must come from one build (merge compares shards by it).
            if options.shard.is_some() && m.versions != manifest::versions() {
                bail!(
                    "{} was started by another build of touchstone (its manifest's versions differ from this binary's); delete the folder and run the shard again, or resume it with the build that started it",
                    dir.display()
                );
            }
            m
        }
        Some(_) => bail!(
            "{} already holds a run; pass --resume to continue it",
            dir.display()
        ),
        None => manifest::Manifest::new(&config, &text, config_path),
    };
    // A shard runs its own points only; its log may hold no other.
    let points: Vec<Point> = match &options.shard {
        Some((shard, _)) => shard.points(&points).into_iter().cloned().collect(),
        None => points,
    };
    if let Some((shard, _)) = &options.shard {
        let record = man.shard.get_or_insert_with(|| ShardRecord {
            shard: *shard,
            points: points.len(),
            attempts: Vec::new(),
        });
        if record.shard != *shard || record.points != points.len() {
            bail!(
                "{} belongs to shard {} ({} points), not {shard} ({} points)",
                dir.display(),
                record.shard,
                record.points,
                points.len()
            );
        }
        man.finished = None;
        record.attempts.push(Attempt {
            git_commit: manifest::git_commit(),
            host: shard::host_name(),
            started: manifest::timestamp(),
            finished: None,
            rows: 0,
            slurm: SlurmIds::from_env(),
        });
    }
    man.write(&dir)?;

    let log = dir.join("rows.jsonl");
    let keys: HashSet<String> = points.iter().map(Point::key).collect();
    let expect = rows::Expect {
        config_hash: &hash,
        keys: &keys,
    };
    let existing = rows::read_log(&log, &expect)?;
    if let Some(line) = existing.torn {
        println!(
            "{}:{line}: dropping a torn last row (the process died while writing it); it will be run again",
            log.display()
        );
        rows::repair(&log, &existing)?;
    }
    let done: HashSet<&str> = existing.rows.iter().map(|r| r.key.as_str()).collect();
    let todo: Vec<&Point> = points
        .iter()
        .filter(|p| !done.contains(p.key().as_str()))
        .collect();
    println!(
        "touchstone run {}{} · {} points ({} done, {} to run) · {}",
        config_path.display(),
        options
            .shard
            .as_ref()
            .map_or(String::new(), |(s, _)| format!(" · shard {s}")),
        points.len(),
        points.len() - todo.len(),
        todo.len(),
        dir.display()
    );

    let bar = if options.progress {
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut context = Shared::new(&config, &dir, options.fault)?;
    if trains {
        preflight(&text, config_path, &points, context.head.as_ref())?;
    }
    // What the rows will be made from: a resumed run must read the same model and data.
    let model = context
        .model
        .as_deref()
        .map(manifest::model_inputs)
        .transpose()?;
    let dataset = context
        .data
        .as_deref()
        .map(manifest::dataset_inputs)
        .transpose()?;
    if resume {
        for (what, before, now) in [
            ("model", &man.model, &model),
            ("dataset", &man.dataset, &dataset),
        ] {
            if before.is_some() && before != now {
                bail!(
                    "{}: the {what} changed since this run started ({:?} then, {:?} now); start a new run",
                    dir.display(),
                    before,
                    now
                );
            }
        }
    }
    man.model = model;
    man.dataset = dataset;
    man.params = param_records(&points)?;
    man.write(&dir)?;
    let machine = machine::describe();
    for (i, point) in todo.iter().enumerate() {
        if options.max_rows.is_some_and(|m| i >= m) {
            bar.abandon();
            match &options.shard {
                Some((s, run_dir)) => println!(
                    "stopped after {i} new rows (--max-rows); rerun `--shard {s} --run-dir {}` to resume",
                    run_dir.display()
                ),
                None => println!(
                    "stopped after {i} new rows (--max-rows); resume with --resume {}",
                    dir.display()
                ),
            }
            return Ok(dir);
        }
        bar.set_message(point.key());
        let row = run_point(&config, point, &mut context, &machine, &hash)
            .with_context(|| format!("run {}", point.key()))?;
        rows::append(&log, &row)?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let all = rows::read_log(&log, &expect)?;
    man.finish(start.elapsed().as_secs_f64() + man.wall_s, all.rows.len());
    let finished = man.finished.clone();
    if let Some(record) = man.shard.as_mut() {
        let attempt = record.attempts.last_mut().expect("pushed above");
        attempt.finished = finished;
        attempt.rows = todo.len();
        let shard = record.shard;
        man.write(&dir)?;
        println!(
            "shard {} finished: {} rows in {}; merge the shards with `touchstone merge {}`",
            shard,
            all.rows.len(),
            dir.display(),
            dir.parent()
                .and_then(Path::parent)
                .unwrap_or(&dir)
                .display()
        );
        return Ok(dir);
    }
    man.write(&dir)?;
    report::render(&dir)?;
    println!("wrote {}", dir.join("summary.md").display());
    Ok(dir)
}

/// What runs share: the dataset and model folders, the test templates (one CNN pass per
/// preprocessing and seed) and the accuracy of every scheme configuration run so far.
struct Shared {
    data: Option<PathBuf>,
    model: Option<PathBuf>,
    /// The model's float head, for latency runs (its real weights, both signs, encrypted).
    head: Option<MatchModel>,
    tests: HashMap<(String, u64), TestSet>,
    accuracy: HashMap<String, AccuracyCols>,
    dir: PathBuf,
    fault: Option<Fault>,
}

/// Everything that changes a point's accuracy: every axis but the gallery size and probe
/// count of the latency run (the accuracy run enrols the test split and identifies every
/// protocol probe, whatever those say).
/// The accuracy run always runs in process (its scores are the same wherever the roles
/// run), so deployed points share it with their in-process twins.
fn accuracy_key(point: &Point) -> String {
    let mut p = point.clone();
    p.users = 0;
    p.probes = 0;
    p.deployment = super::config::DeploymentMode::InProcess;
    if point.deployment == super::config::DeploymentMode::Remote {
        p.clusters = 1;
    }
    p.key()
}

impl Shared {
    fn new(config: &ExperimentConfig, dir: &Path, fault: Option<Fault>) -> Result<Self> {
        let Some(data) = &config.data else {
            return Ok(Self {
                data: None,
                model: None,
                head: None,
                tests: HashMap::new(),
                accuracy: HashMap::new(),
                dir: dir.to_path_buf(),
                fault,
            });
        };
        let folder = match (&data.synthetic, &data.path) {
            (Some(synth), _) => {
                let folder = synthetic_folder(&config.outputs.dir, synth);
                ensure_synthetic(synth, &folder)?;
                folder
            }
            (None, Some(path)) => path.clone(),
            (None, None) => unreachable!("validated by config::parse"),
        };
        let model_cfg = config.model.as_ref().expect("validated: data has a model");
        let model = match (&model_cfg.path, &model_cfg.train) {
            (Some(path), _) => path.clone(),
            (None, Some(train_config)) => {
                ensure_trained(train_config, &config.outputs.dir, model_cfg.device)?
            }
            (None, None) => unreachable!("validated by config::parse"),
        };
        let head = head_of(&model)?;
        Ok(Self {
            data: Some(folder),
            model: Some(model),
            head: Some(head),
            tests: HashMap::new(),
            accuracy: HashMap::new(),
            dir: dir.to_path_buf(),
            fault,
        })
    }

    /// The point's scheme, run over the model's test templates through the real roles:
    /// enrol every test image, identify every protocol probe, read the metrics off the
    /// scores it returned. An encrypted scheme's decrypted scores must all equal the
    /// plaintext integer scores, or the run fails.
    fn accuracy(
        &mut self,
        config: &ExperimentConfig,
        point: &Point,
    ) -> Result<Option<AccuracyCols>> {
        let (Some(data), Some(model)) = (self.data.clone(), self.model.clone()) else {
            return Ok(None);
        };
        let key = accuracy_key(point);
        if let Some(done) = self.accuracy.get(&key) {
            return Ok(Some(done.clone()));
        }
        let test_key = (point.preprocessing.clone(), point.seed);
        if !self.tests.contains_key(&test_key) {
            let split_seed = config.data.as_ref().map_or(42, |d| d.split_seed);
            let pipeline = (point.preprocessing != "model").then_some(point.preprocessing.as_str());
            let test = TestSet::load(&model, &data, split_seed, point.seed, pipeline)
                .with_context(|| format!("evaluating {} on {}", model.display(), data.display()))?;
            self.tests.insert(test_key.clone(), test);
        }
        let test = &self.tests[&test_key];
        let workload = test.workload(point.bits)?;
        let scheme = scheme_config(point, self.fault)?;
        let mut matcher = build_matcher(&scheme, &workload.model, &workload.quantized)?;
        let matrix = evaluation::score(&workload, matcher.as_mut())?;
        if let Some(tally) = &matrix.exactness {
            tally
                .require_exact(&format!("{} on the test templates", point.scheme))
                .map_err(|e| anyhow!("{e}"))?;
        }
        let a = Accuracy::of(test, &matrix, evaluation::threshold(&workload, &matrix));
        let path = self.dir.join(report::scores_file(point));
        let file = report::SchemeScores {
            scheme: point.scheme.to_string(),
            preprocessing: point.preprocessing.clone(),
            bits: point.bits,
            seed: point.seed,
            scores: a.scores.clone(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, serde_json::to_string(&file)?)
            .with_context(|| format!("writing {}", path.display()))?;
        let v = &a.verification;
        let cols = AccuracyCols {
            scores: if point.scheme.encrypted() {
                "decrypted"
            } else if matrix.integer {
                "integer"
            } else {
                "float"
            }
            .into(),
            scores_checked: matrix.exactness.as_ref().map(|t| t.scores_checked),
            queries: matrix.rows.len(),
            accuracy: v.accuracy,
            precision: v.precision,
            recall: v.recall,
            f1: v.f1,
            roc_auc: v.roc_auc,
            eer: v.eer,
            fnmr_at_fmr_1pct: v.fnmr_at_fmr_1pct,
            rank1: a.rank1,
            rank5: a.rank5,
            test_images: a.test_images,
        };
        self.accuracy.insert(key, cols.clone());
        Ok(Some(cols))
    }
}

/// The run folder: a new `<outputs.dir>/<name>/<timestamp>` (made here, never reused: a
/// second run started in the same second gets a `-2` suffix), or the one to resume. Either
/// way it must really lie under `outputs.dir` — checked on resolved paths before anything
/// is created inside it, so a symbolic link cannot lead a run elsewhere.
fn run_folder(config: &ExperimentConfig, options: &RunOptions) -> Result<PathBuf> {
    run_folder_in(&config.outputs.dir, &config.name, &options.resume)
}

/// A new run folder `<outputs>/<name>/<timestamp>` (studies that never resume).
pub(crate) fn new_run_folder(outputs: &Path, name: &str) -> Result<PathBuf> {
    run_folder_in(outputs, name, &None)
}

fn run_folder_in(
    outputs_dir: &Path,
    name: &str,
    resume: &Option<Option<PathBuf>>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(outputs_dir)
        .with_context(|| format!("creating {}", outputs_dir.display()))?;
    let outputs = outputs_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", outputs_dir.display()))?;
    let inside = |path: &Path| -> Result<()> {
        let real = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        if !real.starts_with(&outputs) {
            bail!(
                "{} resolves to {}, outside outputs.dir {}",
                path.display(),
                real.display(),
                outputs.display()
            );
        }
        Ok(())
    };
    let root = outputs_dir.join(name);
    if root.exists() {
        inside(&root)?;
    }
    let dir = match resume {
        Some(Some(dir)) => dir.clone(),
        Some(None) => manifest::latest(&root)?.with_context(|| {
            format!(
                "--resume: no earlier run of `{}` under {}",
                name,
                root.display()
            )
        })?,
        None => {
            std::fs::create_dir_all(&root)
                .with_context(|| format!("creating {}", root.display()))?;
            inside(&root)?;
            let stamp = manifest::timestamp();
            let mut made = None;
            for n in 1..=100 {
                let leaf = if n == 1 {
                    stamp.clone()
                } else {
                    format!("{stamp}-{n}")
                };
                match std::fs::create_dir(root.join(&leaf)) {
                    Ok(()) => {
                        made = Some(root.join(leaf));
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("creating {}", root.display()))
                    }
                }
            }
            made.with_context(|| format!("100 runs of `{name}` started this second"))?
        }
    };
    if !dir.is_dir() {
        bail!("--resume: {} is not a run folder", dir.display());
    }
    inside(&dir)?;
    Ok(dir)
}

/// A model folder's float head (FC-1 weights, bias, threshold).
fn head_of(model: &Path) -> Result<MatchModel> {
    let exported = train::export::load_head(model)?;
    Ok(MatchModel {
        weights: exported.head.fc1_weight.clone(),
        bias: exported.head.fc1_bias,
        threshold: exported.threshold as f32,
    })
}

/// Checks what only the model decides, for every point before the first one runs: the
/// point's parameter set must hold every score its quantized head can produce (t > 2·bound)
/// and its layout must fit the head — exactly what the client checks when it is built.
fn preflight(text: &str, path: &Path, points: &[Point], head: Option<&MatchModel>) -> Result<()> {
    let mut checked = HashSet::new();
    for p in points.iter().filter(|p| p.scheme.encrypted()) {
        if !checked.insert((
            p.seed,
            p.bits,
            p.params.clone(),
            p.scheme,
            p.encrypted_weights,
        )) {
            continue;
        }
        let spec = SyntheticSpec {
            bits: p.bits,
            weight_bits: p.bits,
            ..SyntheticSpec::new(1, 1, p.seed)
        };
        let workload = match head {
            Some(h) => Workload::synthetic_with_head(&spec, h)?,
            None => Workload::synthetic(&spec)?,
        };
        let scheme = scheme_config(p, None)?;
        let params = scheme.param_spec()?.expect("encrypted").build()?;
        let name = params.name().to_string();
        let layout = match p.scheme {
            SchemeKind::BlindTouch => Layout::BlindTouch {
                encrypted_weights: p.encrypted_weights,
            },
            _ => Layout::Columnar,
        };
        Client::new(params, layout, workload.quantized).map_err(|e| {
            let key = if p.params == "default" {
                "bits"
            } else {
                "params"
            };
            anyhow!(
                "{}:{}: field `matching.{key}`: {} with parameter set `{name}` and `bits: {}`: {e}",
                path.display(),
                config::line_of(text, key),
                p.scheme,
                p.bits
            )
        })?;
    }
    Ok(())
}

/// The parameter sets the sweep's encrypted points use, as built (moduli and t).
pub(crate) fn param_records(points: &[Point]) -> Result<Vec<manifest::ParamRecord>> {
    let mut names = Vec::new();
    for p in points.iter().filter(|p| p.scheme.encrypted()) {
        if let Some(spec) = scheme_config(p, None)?.param_spec()? {
            if !names.iter().any(|s: &ParamSpec| s.name == spec.name) {
                names.push(spec);
            }
        }
    }
    names
        .into_iter()
        .map(|spec| {
            let built = spec.build()?;
            Ok(manifest::ParamRecord {
                name: spec.name.clone(),
                degree: built.degree(),
                moduli: built.moduli().to_vec(),
                plaintext: built.plaintext(),
                log2_q: built.log2_q(),
                insecure: built.insecure(),
            })
        })
        .collect()
}

fn scheme_config(point: &Point, fault: Option<Fault>) -> Result<SchemeConfig> {
    Ok(SchemeConfig {
        kind: point.scheme,
        params: (point.params != "default")
            .then(|| ParamSpec::preset(&point.params))
            .transpose()?,
        encrypted_weights: point.encrypted_weights,
        // A remote point's clusters are the servers' (0 in its key); what runs in
        // process for it (the accuracy run) uses one.
        clusters: point.clusters.max(1),
        measure_noise: true,
        engine: point.engine,
        fault,
        query_form: protocol::messages::QueryForm::default(),
    })
}

/// Opens (creating, never truncating) a lock file; the caller takes the lock it needs.
fn lock_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Where a generated set is cached: `<outputs>/cache/synth-<preset>-<fingers>-<seed>-<altered>`.
pub(crate) fn synthetic_folder(outputs: &Path, synth: &datasets::synth::SynthConfig) -> PathBuf {
    outputs.join("cache").join(
        format!(
            "synth-{:?}-{}-{}-{}",
            synth.preset, synth.fingers, synth.seed, synth.altered
        )
        .to_lowercase(),
    )
}

/// The model `train_config` trains, from the cache (`<outputs>/cache/model-<digest>`,
/// see [`train::model_digest`]) or trained into it first. Shards starting together wait
/// on a lock; a training stopped half-way resumes from its checkpoint.
pub(crate) fn ensure_trained(
    train_config: &Path,
    outputs: &Path,
    device: super::config::TrainDevice,
) -> Result<PathBuf> {
    let tc = train::read_config(train_config)?;
    ensure_trained_config(tc, &train_config.display().to_string(), outputs, device)
}

/// [`ensure_trained`] for a training config already in memory (`label` names it in
/// messages).
pub(crate) fn ensure_trained_config(
    mut tc: train::config::TrainConfig,
    label: &str,
    outputs: &Path,
    device: super::config::TrainDevice,
) -> Result<PathBuf> {
    let digest = train::model_digest(&tc)?;
    let folder = outputs
        .join("cache")
        .join(format!("model-{}", &digest[..16]));
    std::fs::create_dir_all(outputs.join("cache"))
        .with_context(|| format!("creating {}", outputs.join("cache").display()))?;
    let lock_path = folder.with_extension("lock");
    let lock = lock_file(&lock_path)?;
    if let Err(e) = lock.lock() {
        eprintln!(
            "note: cannot lock {} ({e}); training without it",
            lock_path.display()
        );
    }
    // A whole model folder (its checksums verify) is reused as it is.
    if train::export::load_head(&folder).is_ok() {
        println!(
            "reusing the model trained from {label} in {}",
            folder.display()
        );
        return Ok(folder);
    }
    tc.out = folder.clone();
    println!("training the model from {label} into {}", folder.display());
    let outcome = match device {
        super::config::TrainDevice::Cuda => {
            match crate::train_cmd::train_on_cuda(&tc, true, None) {
                Ok(outcome) => outcome,
                Err(e) => {
                    println!("note: {e:#}; training on the CPU instead");
                    train::run_with::<train::CpuTraining>(
                        &tc,
                        &Default::default(),
                        true,
                        true,
                        None,
                    )
                }
            }
        }
        super::config::TrainDevice::Cpu => {
            train::run_with::<train::CpuTraining>(&tc, &Default::default(), true, true, None)
        }
    };
    outcome.with_context(|| format!("training {}", folder.display()))?;
    Ok(folder)
}

pub(crate) fn ensure_synthetic(synth: &datasets::synth::SynthConfig, folder: &Path) -> Result<()> {
    // Shards of one sweep start together (a Slurm array): one generates the set, the
    // others wait on the lock and then find it made.
    if let Some(parent) = folder.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut lock_path = folder.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = lock_file(&lock_path)?;
    // Some shared file systems (Lustre with localflock, NFS without a lock manager) lock
    // per node or not at all: the lock only saves duplicate work; correctness comes from
    // generating into a private folder and renaming it into place.
    if let Err(e) = lock.lock() {
        eprintln!(
            "note: cannot lock {} ({e}); generating without it",
            lock_path.display()
        );
    }
    let made = |dir: &Path| -> bool {
        std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<datasets::synth::Manifest>(&t).ok())
            .is_some_and(|m| &m.config == synth)
    };
    if made(folder) {
        return Ok(());
    }
    let mut private = folder.as_os_str().to_owned();
    private.push(format!(
        ".tmp-{}-{}",
        super::shard::host_name(),
        std::process::id()
    ));
    let private = PathBuf::from(private);
    println!("generating the synthetic set into {}", folder.display());
    let _ = std::fs::remove_dir_all(&private);
    if let Err(e) = datasets::synth::write(synth, &private, &|| {}) {
        let _ = std::fs::remove_dir_all(&private);
        return Err(e.into());
    }
    let with_suffix = |suffix: &str| {
        let mut p = folder.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let done = |keep_private: bool| {
        if !keep_private {
            let _ = std::fs::remove_dir_all(&private);
        }
        Ok(())
    };
    // Into place by rename; a complete set already there (another process finished
    // first) is kept and never touched.
    match std::fs::rename(&private, folder) {
        Ok(()) => return Ok(()),
        Err(_) if made(folder) => return done(false),
        Err(_) => {}
    }
    // `folder` holds a stale or partial set: moved aside, never deleted in place.
    let aside = with_suffix(&format!(
        ".stale-{}-{}",
        super::shard::host_name(),
        std::process::id()
    ));
    if let Err(e) = std::fs::rename(folder, &aside) {
        if made(folder) {
            return done(false);
        }
        let _ = std::fs::remove_dir_all(&private);
        return Err(e).with_context(|| format!("moving the stale {} aside", folder.display()));
    }
    if made(&aside) && std::fs::rename(&aside, folder).is_ok() {
        // It was completed in the meantime: back in place, ours dropped.
        return done(false);
    }
    let result = match std::fs::rename(&private, folder) {
        Ok(()) => Ok(()),
        Err(_) if made(folder) => done(false),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&private);
            Err(e).with_context(|| format!("moving {} to {}", private.display(), folder.display()))
        }
    };
    let _ = std::fs::remove_dir_all(&aside);
    result
}

/// What a point's latency run measured, in process or deployed.
pub(crate) struct Latency {
    /// Per stage of [`STAGES`]; `None` for a stage the point does not have.
    pub stages: Vec<Option<Stat>>,
    pub cluster_eval: Stat,
    pub keygen_ms: f64,
    pub enrol_ms: f64,
    pub key_bytes: usize,
    pub gallery_bytes: usize,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    pub fanout_bytes: Option<usize>,
    pub gather_bytes: Option<usize>,
    pub result_ciphertexts: usize,
    pub noise_budget_bits: Option<f64>,
    pub exact: Option<bool>,
    pub queries: usize,
    pub engine_running: String,
    pub deployment: Option<rows::DeploymentRecord>,
}

fn run_point(
    config: &ExperimentConfig,
    point: &Point,
    context: &mut Shared,
    machine: &str,
    config_hash: &str,
) -> Result<Row> {
    let start = Instant::now();
    let accuracy = context.accuracy(config, point)?;

    // Latency on seeded synthetic templates: the timing of a 1:N match does not depend on
    // the template values, and these scale to any gallery size. With a model, its real
    // head (weights of both signs) is what the servers multiply by.
    let spec = SyntheticSpec {
        bits: point.bits,
        weight_bits: point.bits,
        ..SyntheticSpec::new(point.users, point.probes, point.seed)
    };
    let (workload, templates) = match &context.head {
        Some(head) => (
            Workload::synthetic_with_head(&spec, head)?,
            "synthetic, model head",
        ),
        None => (Workload::synthetic(&spec)?, "synthetic"),
    };
    let scheme = scheme_config(point, context.fault)?;
    let params_name = scheme.param_spec()?.map_or("-".into(), |s| s.name.clone());
    let latency = if point.deployment.deployed() {
        if context.fault.is_some() {
            bail!(
                "fault injection works in process only; point {} is deployed",
                point.key()
            );
        }
        let spec = scheme
            .param_spec()?
            .ok_or_else(|| anyhow!("scheme `{}` has no parameter set to deploy", point.scheme))?;
        super::deployment::latency(
            point,
            &config.deployment,
            spec,
            &workload,
            config.repetitions,
            &context.dir,
        )?
    } else {
        in_process_latency(point, &scheme, &workload, config.repetitions)?
    };
    Ok(Row {
        config_hash: config_hash.to_string(),
        key: point.key(),
        point: point.clone(),
        templates: templates.into(),
        params_name,
        engine_running: latency.engine_running,
        accuracy,
        stages: latency.stages,
        cluster_eval: latency.cluster_eval,
        keygen_ms: latency.keygen_ms,
        enrol_ms: latency.enrol_ms,
        key_bytes: latency.key_bytes,
        gallery_bytes: latency.gallery_bytes,
        upload_bytes: latency.upload_bytes,
        download_bytes: latency.download_bytes,
        fanout_bytes: latency.fanout_bytes,
        gather_bytes: latency.gather_bytes,
        result_ciphertexts: latency.result_ciphertexts,
        noise_budget_bits: latency.noise_budget_bits,
        exact: latency.exact,
        queries: latency.queries,
        machine: machine.to_string(),
        wall_s: start.elapsed().as_secs_f64(),
        deployment: latency.deployment,
    })
}

/// The latency run with every role in this process: no socket, so the socket stages
/// stay empty.
fn in_process_latency(
    point: &Point,
    scheme: &SchemeConfig,
    workload: &Workload,
    repetitions: usize,
) -> Result<Latency> {
    let mut matcher = build_matcher(scheme, &workload.model, &workload.quantized)?;
    let enrol_start = Instant::now();
    let enrolment = matcher.enrol(&workload.gallery)?;
    let enrol_ms = enrol_start.elapsed().as_secs_f64() * 1e3;

    let reference = Reference::of(workload);
    let mut tally = Tally::default();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut cluster_eval = Vec::new();
    let (mut noise, mut queries) = (f64::INFINITY, 0usize);
    let mut last = None;
    for _ in 0..repetitions {
        for probe in &workload.probes {
            let outcome = matcher.identify(&probe.template)?;
            let t = &outcome.timings;
            let values = [
                ("encrypt", t.encrypt),
                ("serialize_query", t.serialize_query),
                ("clusters_wall", t.clusters_wall),
                ("gather", t.gather),
                ("compress", t.compress),
                ("serialize_results", t.serialize_results),
                ("decrypt", t.decrypt),
                ("decide", t.decide),
                ("total", t.total()),
            ];
            for (name, v) in values {
                let i = STAGES.iter().position(|s| *s == name).expect("a stage");
                samples[i].push(v.as_secs_f64() * 1e3);
            }
            cluster_eval.push(t.slowest_cluster().as_secs_f64() * 1e3);
            if let Some(bits) = outcome.noise_budget_bits {
                noise = noise.min(bits);
            }
            if point.scheme.encrypted() {
                tally.check(&reference, &probe.template, &outcome);
            }
            queries += 1;
            last = Some(outcome);
        }
    }
    let last = last.expect("at least one probe and repetition");
    let encrypted = point.scheme.encrypted();
    if encrypted {
        tally
            .require_exact(&format!("{} latency run", point.scheme))
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(Latency {
        // The socket stages have no samples in process: left empty, never zero.
        stages: samples
            .into_iter()
            .map(|s| (!s.is_empty()).then(|| Stat::of(s)))
            .collect(),
        cluster_eval: Stat::of(cluster_eval),
        keygen_ms: enrolment.keygen.as_secs_f64() * 1e3,
        enrol_ms,
        key_bytes: enrolment.setup.total,
        gallery_bytes: enrolment.stored_bytes,
        upload_bytes: last.traffic.upload,
        download_bytes: last.traffic.download,
        fanout_bytes: Some(last.traffic.fanout),
        gather_bytes: Some(last.traffic.gather),
        result_ciphertexts: last.traffic.result_ciphertexts,
        noise_budget_bits: encrypted.then_some(noise),
        exact: encrypted.then_some(true),
        queries,
        engine_running: if encrypted {
            enrolment.engine.clone()
        } else {
            "-".into()
        },
        deployment: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ColumnarEngine;

    fn point(seed: u64, users: usize) -> Point {
        Point {
            seed,
            preprocessing: "model".into(),
            scheme: SchemeKind::Columnar,
            engine: ColumnarEngine::Cpu,
            params: "default".into(),
            encrypted_weights: false,
            bits: 8,
            users,
            clusters: 1,
            probes: 2,
            deployment: Default::default(),
        }
    }

    /// A stale set in the cache folder is replaced by a complete one (moved aside, never
    /// half-overwritten); a complete set is kept as it is; no private or stale folder is
    /// left behind.
    #[test]
    fn synthetic_sets_replace_stale_ones_whole_and_keep_complete_ones() {
        use datasets::synth::{PresetKind, SynthConfig};
        let tmp = tempfile::tempdir().unwrap();
        let synth = SynthConfig {
            preset: PresetKind::Socofing,
            fingers: 1,
            seed: 3,
            altered: false,
        };
        let folder = synthetic_folder(tmp.path(), &synth);
        std::fs::create_dir_all(folder.join("Real")).unwrap();
        std::fs::write(folder.join("manifest.json"), "{ half written").unwrap();
        std::fs::write(folder.join("Real/stale.BMP"), b"old").unwrap();
        ensure_synthetic(&synth, &folder).unwrap();
        assert!(
            !folder.join("Real/stale.BMP").exists(),
            "the stale set is gone"
        );
        let manifest = std::fs::read_to_string(folder.join("manifest.json")).unwrap();
        let parsed: datasets::synth::Manifest = serde_json::from_str(&manifest).unwrap();
        assert_eq!(parsed.config, synth);
        assert_eq!(datasets::loaders::load(&folder).unwrap().samples.len(), 10);
        // Complete: kept untouched (a marker file survives).
        std::fs::write(folder.join("marker"), b"kept").unwrap();
        ensure_synthetic(&synth, &folder).unwrap();
        assert!(folder.join("marker").exists());
        let leftovers: Vec<String> = std::fs::read_dir(folder.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-") || n.contains(".stale-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn accuracy_is_cached_by_everything_but_gallery_size_and_probe_count() {
        // The latency axes share one accuracy run ...
        assert_eq!(accuracy_key(&point(1, 500)), accuracy_key(&point(1, 5000)));
        let mut more_probes = point(1, 500);
        more_probes.probes = 9;
        assert_eq!(accuracy_key(&point(1, 500)), accuracy_key(&more_probes));
        // ... every other axis changes the scores or how they are made.
        assert_ne!(accuracy_key(&point(1, 500)), accuracy_key(&point(2, 500)));
        for change in [
            |p: &mut Point| p.bits = 6,
            |p: &mut Point| p.preprocessing = "identity".into(),
            |p: &mut Point| p.engine = ColumnarEngine::Fhe,
            |p: &mut Point| p.clusters = 3,
            |p: &mut Point| p.params = "col-16384".into(),
            |p: &mut Point| p.scheme = SchemeKind::BlindTouch,
        ] {
            let mut other = point(1, 500);
            change(&mut other);
            assert_ne!(accuracy_key(&point(1, 500)), accuracy_key(&other));
        }
    }
}
