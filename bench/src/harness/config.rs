//! Experiment configs: one YAML file names the data, the model, the matching set-up and
//! the outputs; any field marked as an axis may be a list, and the lists expand into the
//! runs of a sweep (cartesian product, or zipped for the axes named under `zip`).
//!
//! Errors name the file, the line and column, and the field path.

use anyhow::{anyhow, bail, Result};
use datasets::synth::SynthConfig;
use protocol::{ColumnarEngine, SchemeKind};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A value or a non-empty list of values to sweep over.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Axis<T>(pub Vec<T>);

impl<T> Axis<T> {
    /// A single value.
    pub fn one(value: T) -> Self {
        Self(vec![value])
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Axis<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_yaml::Value::deserialize(d)?;
        let values = match value {
            serde_yaml::Value::Sequence(items) => {
                if items.is_empty() {
                    return Err(D::Error::custom(
                        "empty sweep: an axis needs at least one value",
                    ));
                }
                items
                    .into_iter()
                    .map(serde_yaml::from_value)
                    .collect::<std::result::Result<Vec<T>, _>>()
                    .map_err(D::Error::custom)?
            }
            single => vec![serde_yaml::from_value(single).map_err(D::Error::custom)?],
        };
        Ok(Self(values))
    }
}

/// The whole experiment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name: results go to `<outputs.dir>/<name>/<timestamp>/`.
    pub name: String,
    /// What the experiment shows (copied to the summary).
    #[serde(default)]
    pub description: String,
    /// Seeds of the synthetic templates and probes (axis).
    #[serde(default = "default_seed")]
    pub seed: Axis<u64>,
    /// Timed repetitions of every probe (medians and spread are over these).
    #[serde(default = "default_repetitions")]
    pub repetitions: usize,
    /// Axes that advance together instead of forming a product (equal lengths).
    #[serde(default)]
    pub zip: Vec<String>,
    /// Where fingerprints come from; absent: latency only, on synthetic templates.
    #[serde(default)]
    pub data: Option<DataConfig>,
    /// The feature model (with `data`).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Encrypted matching.
    pub matching: MatchingConfig,
    /// What to write.
    #[serde(default)]
    pub outputs: OutputConfig,
    /// Where the encrypted schemes' roles run: in this process (default), as server
    /// processes the harness starts on loopback, or on servers already running.
    #[serde(default)]
    pub deployment: DeploymentConfig,
}

fn default_seed() -> Axis<u64> {
    Axis::one(1)
}

fn default_repetitions() -> usize {
    3
}

/// A fingerprint dataset: generated, or a folder in the SOCOFing or PolyU layout.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Generate this synthetic set (cached under `<outputs.dir>/cache/`).
    #[serde(default)]
    pub synthetic: Option<SynthConfig>,
    /// Or read this folder.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Seed of the protocol's train / validation / test split.
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Preprocessing pipelines (axis): `model` (the model's own) or a preset name.
    #[serde(default = "default_preprocessing")]
    pub preprocessing: Axis<String>,
}

fn default_split_seed() -> u64 {
    42
}

fn default_preprocessing() -> Axis<String> {
    Axis::one("model".into())
}

/// A trained model folder, or a training config to run first.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A model folder written by `touchstone train`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Or a training config to train from: trained once into
    /// `<outputs>/cache/model-<digest>` (the digest of the config and its data) and reused
    /// by every later run and shard; an interrupted training resumes from its checkpoint.
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Where `train` runs: `cpu` (default) or `cuda` (the first GPU, with a build with
    /// `--features cuda`; the CPU, with a note, where there is none).
    #[serde(default)]
    pub device: TrainDevice,
}

/// The device a harness training runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainDevice {
    /// Burn's Flex backend.
    #[default]
    Cpu,
    /// Burn's CUDA backend, when built with it and a GPU is present.
    Cuda,
}

/// The matching set-up; every field is an axis.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    /// plain, quantized, blindtouch, columnar.
    pub scheme: Axis<SchemeKind>,
    /// columnar engine: fhe, cpu, cuda.
    #[serde(default = "default_engine")]
    pub engine: Axis<ColumnarEngine>,
    /// Parameter preset, or `default` for the scheme's own.
    #[serde(default = "default_params")]
    pub params: Axis<String>,
    /// blindtouch: encrypt weights and mask as the paper did.
    #[serde(default = "default_false")]
    pub encrypted_weights: Axis<bool>,
    /// Template and weight quantization bits.
    #[serde(default = "default_bits")]
    pub bits: Axis<u32>,
    /// Enrolled users.
    pub users: Axis<usize>,
    /// Cluster servers.
    #[serde(default = "default_clusters")]
    pub clusters: Axis<usize>,
    /// Probes per repetition.
    #[serde(default = "default_probes")]
    pub probes: Axis<usize>,
}

fn default_engine() -> Axis<ColumnarEngine> {
    Axis::one(ColumnarEngine::Cpu)
}
fn default_params() -> Axis<String> {
    Axis::one("default".into())
}
fn default_false() -> Axis<bool> {
    Axis::one(false)
}
fn default_bits() -> Axis<u32> {
    Axis::one(8)
}
fn default_clusters() -> Axis<usize> {
    Axis::one(1)
}
fn default_probes() -> Axis<usize> {
    Axis::one(2)
}

/// Where the roles of an encrypted scheme run for the latency measurement.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentMode {
    /// Every role in this process (`protocol::transport::InProcess`): no socket, so the
    /// rows hold no upload or download time.
    #[default]
    InProcess,
    /// A main server and one cluster server per `clusters` as separate processes on
    /// loopback, started and stopped by the harness for each point.
    Local,
    /// Servers already running elsewhere (`deployment.main`, `deployment.tls`).
    Remote,
}

impl DeploymentMode {
    /// The name used in configs, keys and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }

    /// Whether queries cross sockets (anything but in-process).
    pub fn deployed(self) -> bool {
        self != Self::InProcess
    }
}

impl std::fmt::Display for DeploymentMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DeploymentMode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        [Self::InProcess, Self::Local, Self::Remote]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                anyhow!("unknown deployment mode `{s}`; known: in-process, local, remote")
            })
    }
}

/// The `deployment:` section. `mode` is an axis, so one run can hold in-process and
/// local rows side by side; the other fields configure the modes that use them and are
/// refused where no point uses that mode (a setting that silently does nothing would
/// mislead whoever reads the config).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// in-process, local, remote (axis).
    #[serde(default = "default_mode")]
    pub mode: Axis<DeploymentMode>,
    /// local: pin each server process to its own core with `taskset -c`.
    #[serde(default)]
    pub pin_cores: bool,
    /// remote: the main server's address, HOST:PORT.
    #[serde(default)]
    pub main: Option<String>,
    /// remote: the CA folder holding ca.pem, client.pem and client.key.
    #[serde(default)]
    pub tls: Option<PathBuf>,
}

fn default_mode() -> Axis<DeploymentMode> {
    Axis::one(DeploymentMode::InProcess)
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            pin_cores: false,
            main: None,
            tls: None,
        }
    }
}

/// Output options.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Root of the results tree.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Also write summary.tex with LaTeX tables.
    #[serde(default)]
    pub latex: bool,
    /// Also write SVG figures.
    #[serde(default)]
    pub svg: bool,
}

fn default_dir() -> PathBuf {
    PathBuf::from("results")
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            latex: false,
            svg: false,
        }
    }
}

/// The names of the axes, as `zip` refers to them.
pub const AXES: [&str; 11] = [
    "seed",
    "preprocessing",
    "scheme",
    "engine",
    "params",
    "encrypted_weights",
    "bits",
    "users",
    "clusters",
    "probes",
    "deployment",
];

/// Parses `text` (read from `path`) and checks what serde cannot: the data and model
/// choices, paths that must exist, zipped axes. Errors carry `path:line:column`.
pub fn parse(text: &str, path: &Path) -> Result<ExperimentConfig> {
    parse_with(text, path, true)
}

/// Parses a config stored in a run's manifest: every check but the existence of the data
/// and model folders (a finished run's tables can be rendered anywhere, data or not).
pub fn parse_stored(text: &str, path: &Path) -> Result<ExperimentConfig> {
    parse_with(text, path, false)
}

fn parse_with(text: &str, path: &Path, check_files: bool) -> Result<ExperimentConfig> {
    check_nesting(text, path)?;
    let de = serde_yaml::Deserializer::from_str(text);
    let config: ExperimentConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // Axis values are read through an intermediate value, which loses their position:
        // then the key's own line (found from the field path) is the better location.
        let serde_at = inner.location().map(|l| (l.line(), l.column()));
        let key_at = line_of_path(text, &field);
        let at = match (serde_at, key_at) {
            (Some(s), Some(k)) if k.0 > s.0 => Some(k),
            (Some(s), _) => Some(s),
            (None, k) => k,
        }
        .map(|(l, c)| format!(":{l}:{c}"))
        .unwrap_or_default();
        let message = inner.to_string();
        // serde_yaml appends " at line L column C" and may prefix the parent's path.
        let mut message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        if let Some((parent, _)) = field.rsplit_once('.') {
            if let Some(rest) = message.strip_prefix(&format!("{parent}: ")) {
                message = rest.to_string();
            }
        }
        anyhow!("{}{at}: field `{field}`: {message}", path.display())
    })?;
    let at = |key: &str| {
        // A dotted key is looked up along its path (`data.path`, not the first `path:`).
        let line = if key.contains('.') {
            line_of_path(text, key).map_or(1, |(l, _)| l)
        } else {
            line_of(text, key)
        };
        format!("{}:{line}", path.display())
    };
    if config.repetitions == 0 || config.repetitions > MAX_REPETITIONS {
        bail!(
            "{}: field `repetitions`: must be in 1..={MAX_REPETITIONS}, got {}",
            at("repetitions"),
            config.repetitions
        );
    }
    check_name(&config.name).map_err(|e| anyhow!("{}: field `name`: {e}", at("name")))?;
    check_axes(&config, &at)?;
    for name in &config.zip {
        if !AXES.contains(&name.as_str()) {
            bail!(
                "{}: field `zip`: unknown axis `{name}`; axes: {}",
                at("zip"),
                AXES.join(", ")
            );
        }
    }
    check_deployment(&config, &at, check_files)?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(data) = &config.data {
        match (&data.synthetic, &data.path) {
            (Some(_), Some(_)) => bail!(
                "{}: field `data`: give `synthetic` or `path`, not both",
                at("data")
            ),
            (None, None) => bail!("{}: field `data`: give `synthetic` or `path`", at("data")),
            (None, Some(p)) => {
                let resolved = resolve(base, p);
                if check_files && !resolved.is_dir() {
                    bail!(
                        "{}: field `data.path`: dataset folder {} does not exist — see datasets/README.md for where to put SOCOFing or PolyU, or use `synthetic:`",
                        at("data.path"),
                        resolved.display()
                    );
                }
            }
            (Some(_), None) => {}
        }
        let model = config
            .model
            .as_ref()
            .ok_or_else(|| anyhow!("{}: field `model`: `data` needs a model", at("data")))?;
        match (&model.path, &model.train) {
            (Some(p), None) => {
                let resolved = resolve(base, p);
                if check_files && !resolved.join("head.json").is_file() {
                    bail!(
                        "{}: field `model.path`: no model at {} (no head.json)",
                        at("model.path"),
                        resolved.display()
                    );
                }
            }
            (None, Some(p)) => {
                if check_files && !resolve(base, p).is_file() {
                    bail!(
                        "{}: field `model.train`: no training config {}",
                        at("model.train"),
                        p.display()
                    );
                }
            }
            _ => bail!("{}: field `model`: give `path` or `train`", at("model")),
        }
    } else if config.model.is_some() {
        bail!(
            "{}: field `model`: a model needs `data` to evaluate on",
            at("model")
        );
    }
    Ok(config)
}

/// Timed repetitions of every probe: beyond this a run is a mistake, not a measurement.
pub const MAX_REPETITIONS: usize = 1000;
/// Points one sweep may expand to (checked before anything is expanded).
pub const MAX_POINTS: usize = 100_000;
/// Nesting of YAML collections a config may use (real configs use 3).
pub const MAX_NESTING: usize = 32;

/// Refuses absurdly nested YAML before the parser recurses into it. One pass over the
/// text: flow collections (`[`, `{`) are counted across lines, quoted strings and comments
/// skipped; block collections count one level per deeper indentation and per `- ` item
/// marker at the start of a line.
fn check_nesting(text: &str, path: &Path) -> Result<()> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let mut block = indents.len();
        if flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let indent = line.len() - trimmed.len();
            while indents.last().is_some_and(|&d| d >= indent) {
                indents.pop();
            }
            indents.push(indent);
            let dashes = trimmed.split_whitespace().take_while(|t| *t == "-").count();
            block = indents.len() + dashes;
        }
        let mut quote: Option<char> = None;
        let mut chars = trimmed.chars().peekable();
        let mut deepest = flow;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        let depth = block + deepest;
        if depth > MAX_NESTING {
            bail!(
                "{}:{}: the config nests collections {depth} levels deep; at most {MAX_NESTING} are supported",
                path.display(),
                i + 1
            );
        }
    }
    Ok(())
}

/// The experiment's name becomes a folder under `outputs.dir`: it must be one plain,
/// visible file name.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err(format!("must be 1 to 100 bytes long, got {}", name.len()));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(format!(
            "`{name}` would be hidden or leave the results folder"
        ));
    }
    // Letters and digits of any script, and - _ . + — nothing else: no separators, no
    // spaces, no control, bidirectional or other invisible formatting characters.
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+')))
    {
        return Err(format!(
            "`{}` holds {:?} (U+{:04X}); use a plain file name (letters, digits, - _ . +)",
            name.escape_debug(),
            c,
            c as u32
        ));
    }
    Ok(())
}

/// Every axis value, checked before any point runs: an invalid preset or bit width in a
/// sweep is an error naming its line, not a failure an hour into the run.
fn check_axes(config: &ExperimentConfig, at: &dyn Fn(&str) -> String) -> Result<()> {
    use protocol::limits;
    let m = &config.matching;
    let each =
        |key: &str, values: &[usize], check: fn(usize) -> protocol::Result<()>| -> Result<()> {
            for &v in values {
                check(v).map_err(|e| anyhow!("{}: field `matching.{key}`: {e}", at(key)))?;
            }
            Ok(())
        };
    each("users", &m.users.0, limits::check_users)?;
    each("clusters", &m.clusters.0, limits::check_clusters)?;
    each("probes", &m.probes.0, limits::check_probes)?;
    for &bits in &m.bits.0 {
        limits::check_bits("template", bits)
            .map_err(|e| anyhow!("{}: field `matching.bits`: {e}", at("bits")))?;
    }
    // Whether each preset's t holds the scores of each bit width depends on the model's
    // weights: `run` checks that for every point once the model is loaded, before the
    // first point runs.
    for name in m.params.0.iter().filter(|n| n.as_str() != "default") {
        protocol::ParamSpec::preset(name)
            .and_then(|spec| spec.build())
            .map_err(|e| anyhow!("{}: field `matching.params`: {e}", at("params")))?;
    }
    if let Some(data) = &config.data {
        for p in data
            .preprocessing
            .0
            .iter()
            .filter(|p| p.as_str() != "model")
        {
            datasets::preprocess::Pipeline::preset(p, 64)
                .map_err(|e| anyhow!("{}: field `data.preprocessing`: {e}", at("preprocessing")))?;
        }
    }
    // The size of the sweep, before anything is expanded (zipped axes count once).
    let lengths: Vec<(&str, usize)> = vec![
        ("seed", config.seed.0.len()),
        (
            "preprocessing",
            config.data.as_ref().map_or(1, |d| d.preprocessing.0.len()),
        ),
        ("scheme", m.scheme.0.len()),
        ("engine", m.engine.0.len()),
        ("params", m.params.0.len()),
        ("encrypted_weights", m.encrypted_weights.0.len()),
        ("bits", m.bits.0.len()),
        ("users", m.users.0.len()),
        ("clusters", m.clusters.0.len()),
        ("probes", m.probes.0.len()),
        ("deployment", config.deployment.mode.0.len()),
    ];
    let mut points: usize = 1;
    let mut zipped = false;
    for (name, len) in lengths {
        if config.zip.iter().any(|z| z == name) {
            if zipped {
                continue;
            }
            zipped = true;
        }
        points = points.saturating_mul(len);
    }
    if points > MAX_POINTS {
        bail!(
            "{}: the sweep expands to {} points; at most {MAX_POINTS} are supported — split it into several configs",
            at("matching"),
            if points == usize::MAX {
                "more than 2^64".to_string()
            } else {
                points.to_string()
            }
        );
    }
    Ok(())
}

/// The `deployment:` section against the sweep it applies to: the fields a mode needs
/// are there and no field is given that no point uses; only encrypted schemes are
/// deployed; a remote main server (bound to one client, with no reset over the network)
/// is asked for one gallery only.
fn check_deployment(
    config: &ExperimentConfig,
    at: &dyn Fn(&str) -> String,
    check_files: bool,
) -> Result<()> {
    let d = &config.deployment;
    let modes = &d.mode.0;
    let has = |m: DeploymentMode| modes.contains(&m);
    if has(DeploymentMode::Remote) {
        let main = d.main.as_deref().ok_or_else(|| {
            anyhow!(
                "{}: field `deployment.main`: mode `remote` needs the main server's address (HOST:PORT)",
                at("deployment.mode")
            )
        })?;
        check_address(main)
            .map_err(|e| anyhow!("{}: field `deployment.main`: {e}", at("deployment.main")))?;
        let tls = d.tls.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: field `deployment.tls`: mode `remote` needs the CA folder of the deployment (ca.pem, client.pem, client.key; `touchstone serve ca` writes one)",
                at("deployment.mode")
            )
        })?;
        if check_files {
            for file in ["ca.pem", "client.pem", "client.key"] {
                if !tls.join(file).is_file() {
                    bail!(
                        "{}: field `deployment.tls`: {} has no {file} (the folder `touchstone serve ca --out` wrote)",
                        at("deployment.tls"),
                        tls.display()
                    );
                }
            }
        }
    } else {
        for (key, given) in [("main", d.main.is_some()), ("tls", d.tls.is_some())] {
            if given {
                bail!(
                    "{}: field `deployment.{key}`: only used by mode `remote`, which no point uses",
                    at(&format!("deployment.{key}"))
                );
            }
        }
    }
    if d.pin_cores && !has(DeploymentMode::Local) {
        bail!(
            "{}: field `deployment.pin_cores`: only used by mode `local`, which no point uses",
            at("deployment.pin_cores")
        );
    }
    if !modes.iter().any(|m| m.deployed()) {
        return Ok(());
    }
    // The combinations the sweep really makes (zip included). An expansion error (zipped
    // axes of different lengths) is reported, with its own words, where the sweep is
    // expanded.
    let Ok(points) = super::sweep::expand(config) else {
        return Ok(());
    };
    if let Some(p) = points
        .iter()
        .find(|p| p.deployment.deployed() && !p.scheme.encrypted())
    {
        bail!(
            "{}: field `deployment.mode`: scheme `{}` cannot be deployed `{}`: only the encrypted \
             schemes (blindtouch, columnar) run as servers; measure plain and quantized in another \
             config, or zip `scheme` with `deployment` so they pair with `in-process`",
            at("deployment.mode"),
            p.scheme,
            p.deployment
        );
    }
    if let Some(p) = points.iter().find(|p| {
        p.deployment == DeploymentMode::Local
            && p.scheme == SchemeKind::Columnar
            && p.engine == ColumnarEngine::Cuda
    }) {
        bail!(
            "{}: field `deployment.mode`: engine `{}` cannot be deployed `local`: \
             `touchstone serve cluster` runs `cpu` or `fhe`",
            at("deployment.mode"),
            p.engine
        );
    }
    let galleries: std::collections::BTreeSet<String> = points
        .iter()
        .filter(|p| p.deployment == DeploymentMode::Remote)
        .map(super::sweep::Point::gallery_key)
        .collect();
    if galleries.len() > 1 {
        bail!(
            "{}: field `deployment.mode`: a remote main server serves one client and one gallery \
             (it cannot be reset over the network), but the sweep's remote points need {}: give \
             them one scheme, engine, params, encrypted_weights, bits, seed and users (probes \
             may vary)",
            at("deployment.mode"),
            galleries.len()
        );
    }
    Ok(())
}

/// HOST:PORT with a port number.
fn check_address(addr: &str) -> std::result::Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` lacks a port (HOST:PORT)"))?;
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .is_empty()
    {
        return Err(format!("`{addr}` lacks a host (HOST:PORT)"));
    }
    port.parse::<u16>()
        .map_err(|e| format!("`{addr}`: port `{port}`: {e}"))?;
    Ok(())
}

/// Reads and parses a config file.
pub fn read(path: &Path) -> Result<(ExperimentConfig, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("reading experiment config {}: {e}", path.display()))?;
    Ok((parse(&text, path)?, text))
}

/// Paths in a config are relative to the working directory (the repository root in every
/// documented command), like the training configs'.
pub fn resolve(_base: &Path, p: &Path) -> PathBuf {
    p.to_path_buf()
}

/// Line and column of the key a dotted field path (`matching.users[1]`) names: each
/// segment is searched for below the previous one's line. A segment not found at the
/// start of a line (a flow mapping, `deployment: {mode: local}`) leaves the deepest
/// key found.
fn line_of_path(text: &str, field: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut found = None;
    for segment in field.split('.') {
        let key = segment.split('[').next().unwrap_or(segment);
        if key.is_empty() || key == "?" {
            continue;
        }
        let Some(i) =
            (from..lines.len()).find(|&i| lines[i].trim_start().starts_with(&format!("{key}:")))
        else {
            return found;
        };
        let column = lines[i].len() - lines[i].trim_start().len() + 1;
        found = Some((i + 1, column));
        from = i + 1;
    }
    found
}

/// 1-based line of the first `key:` in the text (1 when absent), for errors about values
/// serde accepted.
pub fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: t\nmatching:\n  scheme: [plain, quantized]\n  users: [10, 20]\n";

    fn error(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("exp.yaml")).unwrap_err())
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = parse(GOOD, Path::new("exp.yaml")).unwrap();
        assert_eq!(c.matching.users.0, vec![10, 20]);
        assert_eq!(c.matching.clusters.0, vec![1]);
        assert_eq!(c.repetitions, 3);
        assert!(c.data.is_none());
    }

    #[test]
    fn unknown_keys_name_file_line_and_field() {
        let e = error("name: t\nmatching:\n  scheme: plain\n  users: 10\n  user: 5\n");
        assert!(e.starts_with("exp.yaml:5:"), "{e}");
        assert!(e.contains("unknown field `user`"), "{e}");
        assert!(e.contains("matching"), "{e}");
    }

    #[test]
    fn wrong_types_name_file_line_and_field() {
        let e = error("name: t\nmatching:\n  scheme: plain\n  users: [10, many]\n");
        assert!(e.starts_with("exp.yaml:4:"), "{e}");
        assert!(e.contains("matching.users"), "{e}");
        let e = error("name: t\nmatching:\n  scheme: rot13\n  users: 10\n");
        assert!(e.contains("matching.scheme") && e.contains("rot13"), "{e}");
        let e = error("name: t\nrepetitions: lots\nmatching:\n  scheme: plain\n  users: 1\n");
        assert!(
            e.starts_with("exp.yaml:2:") && e.contains("repetitions"),
            "{e}"
        );
    }

    #[test]
    fn empty_sweeps_are_refused() {
        let e = error("name: t\nmatching:\n  scheme: plain\n  users: []\n");
        assert!(
            e.contains("matching.users") && e.contains("empty sweep"),
            "{e}"
        );
        assert!(e.starts_with("exp.yaml:4:"), "{e}");
    }

    #[test]
    fn a_missing_dataset_folder_is_named() {
        let text = "name: t\ndata:\n  path: /no/such/socofing\nmodel:\n  path: models/socofing-small\nmatching:\n  scheme: plain\n  users: 1\n";
        let e = error(text);
        assert!(e.starts_with("exp.yaml:3"), "{e}");
        assert!(
            e.contains("data.path")
                && e.contains("/no/such/socofing")
                && e.contains("does not exist"),
            "{e}"
        );
    }

    const DEPLOYED: &str = "name: t\nmatching:\n  scheme: columnar\n  users: 10\n  clusters: [1, 2]\ndeployment:\n  mode: [in-process, local]\n";

    #[test]
    fn deployment_modes_are_an_axis_and_in_process_by_default() {
        let c = parse(GOOD, Path::new("exp.yaml")).unwrap();
        assert_eq!(c.deployment.mode.0, vec![DeploymentMode::InProcess]);
        let c = parse(DEPLOYED, Path::new("exp.yaml")).unwrap();
        assert_eq!(
            c.deployment.mode.0,
            vec![DeploymentMode::InProcess, DeploymentMode::Local]
        );
        let points = crate::harness::sweep::expand(&c).unwrap();
        assert_eq!(points.len(), 4, "2 clusters × 2 modes");
        // Side by side: each cluster count in process, then local.
        let modes: Vec<DeploymentMode> = points.iter().map(|p| p.deployment).collect();
        assert_eq!(
            modes,
            [DeploymentMode::InProcess, DeploymentMode::Local].repeat(2)
        );
        let flow = "name: t\nmatching:\n  scheme: columnar\n  users: 10\ndeployment: {mode: local, pin_cores: true}\n";
        let c = parse(flow, Path::new("exp.yaml")).unwrap();
        assert!(c.deployment.pin_cores);
    }

    #[test]
    fn deployment_errors_name_file_line_and_field() {
        // A plaintext scheme cannot run as servers.
        let e = error(&DEPLOYED.replace("scheme: columnar", "scheme: [plain, columnar]"));
        assert!(e.starts_with("exp.yaml:7:"), "{e}");
        assert!(
            e.contains("deployment.mode")
                && e.contains("scheme `plain` cannot be deployed `local`"),
            "{e}"
        );
        // ... unless zipped with in-process.
        let zipped = DEPLOYED
            .replace("name: t\n", "name: t\nzip: [scheme, deployment]\n")
            .replace("scheme: columnar", "scheme: [quantized, columnar]");
        assert!(parse(&zipped, Path::new("exp.yaml")).is_ok());
        // An unknown mode, in a list and in a flow mapping.
        let e = error(&DEPLOYED.replace("[in-process, local]", "[in-process, cloud]"));
        assert!(e.starts_with("exp.yaml:7:"), "{e}");
        assert!(e.contains("deployment.mode") && e.contains("cloud"), "{e}");
        let e = error(
            "name: t\nmatching:\n  scheme: columnar\n  users: 10\ndeployment: {mode: cloud}\n",
        );
        assert!(e.starts_with("exp.yaml:5:") && e.contains("cloud"), "{e}");
        // What a mode needs, and what no mode uses.
        let e = error(&DEPLOYED.replace("[in-process, local]", "remote"));
        assert!(
            e.starts_with("exp.yaml:7:") && e.contains("deployment.main"),
            "{e}"
        );
        let e = error(&format!("{DEPLOYED}  main: 127.0.0.1:7000\n"));
        assert!(
            e.starts_with("exp.yaml:8:") && e.contains("only used by mode `remote`"),
            "{e}"
        );
        let e = error(&DEPLOYED.replace("[in-process, local]", "in-process\n  pin_cores: true"));
        assert!(
            e.starts_with("exp.yaml:8:") && e.contains("pin_cores"),
            "{e}"
        );
        let remote = DEPLOYED.replace(
            "[in-process, local]",
            "remote\n  main: 10.0.0.1\n  tls: /nonexistent",
        );
        let e = error(&remote);
        assert!(
            e.starts_with("exp.yaml:8:") && e.contains("lacks a port"),
            "{e}"
        );
        let e = error(&remote.replace("10.0.0.1", "10.0.0.1:7000"));
        assert!(
            e.starts_with("exp.yaml:9:") && e.contains("/nonexistent has no ca.pem"),
            "{e}"
        );
        // A stored config is rendered anywhere: the CA folder is not looked for.
        let stored = remote
            .replace("10.0.0.1", "10.0.0.1:7000")
            .replace("clusters: [1, 2]", "clusters: 1");
        assert!(parse_stored(&stored, Path::new("exp.yaml")).is_ok());
        // A remote server binds to one client and gallery.
        let e = format!(
            "{:#}",
            parse_stored(
                &stored.replace("users: 10", "users: [10, 20]"),
                Path::new("exp.yaml")
            )
            .unwrap_err()
        );
        assert!(
            e.starts_with("exp.yaml:7:") && e.contains("one gallery"),
            "{e}"
        );
        // The clusters axis collapses for remote points (the servers have theirs).
        let c = parse_stored(
            &remote.replace("10.0.0.1", "10.0.0.1:7000"),
            Path::new("exp.yaml"),
        )
        .unwrap();
        let points = crate::harness::sweep::expand(&c).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].clusters, 0);
        // cuda does not run as a local cluster process.
        let e = error(&DEPLOYED.replace("scheme: columnar", "scheme: columnar\n  engine: cuda"));
        assert!(e.contains("engine `cuda` cannot be deployed"), "{e}");
    }

    #[test]
    fn zip_names_must_be_axes() {
        let e = error("name: t\nzip: [users, colour]\nmatching:\n  scheme: plain\n  users: 1\n");
        assert!(e.starts_with("exp.yaml:2") && e.contains("colour"), "{e}");
    }
}
