//! `touchstone serve …` and `touchstone client …`: the deployment's command line. The
//! work is the `deploy` crate's; here are arguments, model folders and images, and
//! printing.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use deploy::client_folder::{parse_layout, ClientFolder, Identification};
use deploy::node::Limits;
use deploy::remote::Remote;
use deploy::serve::{ClusterOptions, MainOptions};
use deploy::transport::Deadlines;
use protocol::messages::Layout;
use protocol::roles::FailurePolicy;
use protocol::{ColumnarEngine, ParamSpec, QuantizedModel, Quantizer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `touchstone serve`.
#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// Make a test CA and certificates for a deployment (ca.pem, server.pem/key for the
    /// main and cluster servers, client.pem/key for clients).
    Ca(CaArgs),
    /// Run a cluster server: holds a shard of the encrypted gallery in its store.
    Cluster(ClusterArgs),
    /// Run the main server: forwards, shards, fans out queries and gathers results.
    Main(MainArgs),
}

/// `serve ca`.
#[derive(Args, Debug)]
pub struct CaArgs {
    /// Folder to write (must not hold a CA already).
    #[arg(long)]
    out: PathBuf,
    /// Extra host names or IP addresses the servers' certificate must carry (localhost
    /// and 127.0.0.1 always are). Repeat for each host.
    #[arg(long = "name")]
    names: Vec<String>,
}

/// Options both servers take.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on, IP:PORT.
    #[arg(long)]
    listen: String,
    /// Store folder (created when missing).
    #[arg(long)]
    store: PathBuf,
    /// CA folder with ca.pem, server.pem and server.key (`serve ca`).
    #[arg(long)]
    tls: PathBuf,
    /// Parameter set of the deployment (`touchstone params`): bt-8192 for blindtouch,
    /// col-8192 for columnar.
    #[arg(long, default_value = "col-8192")]
    params: String,
    /// Largest setup, enrolment or update message accepted, MiB.
    #[arg(long, default_value_t = 2048)]
    max_message_mib: u64,
}

impl ServerArgs {
    fn limits(&self) -> Limits {
        let bulk = self.max_message_mib << 20;
        Limits {
            bulk,
            query: Limits::default().query.min(bulk),
            ..Limits::default()
        }
    }

    fn params(&self) -> Result<protocol::Params> {
        Ok(ParamSpec::preset(&self.params)?.build()?)
    }
}

/// `serve cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How columnar is evaluated: `cpu` (the fused engine) or `fhe` (fhe.rs).
    #[arg(long, default_value = "cpu")]
    engine: String,
}

/// `serve main`.
#[derive(Args, Debug)]
pub struct MainArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// A cluster server's address, HOST:PORT (repeat, in order).
    #[arg(long = "cluster", required = true)]
    clusters: Vec<String>,
    /// Answer a query even when some clusters fail, flagged partial with the users left
    /// out (default: the query fails naming the cluster).
    #[arg(long)]
    partial: bool,
    /// Deadline of a query's call to each cluster, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    deadline_ms: u64,
}

/// Runs `touchstone serve …`.
pub fn serve(command: &ServeCommand) -> Result<()> {
    match command {
        ServeCommand::Ca(a) => {
            let made = deploy::tls::make_ca(&a.out, &a.names)?;
            for f in made.files {
                println!("{}", f.display());
            }
            Ok(())
        }
        ServeCommand::Cluster(a) => {
            let engine = match a.engine.as_str() {
                "cpu" => ColumnarEngine::Cpu,
                "fhe" => ColumnarEngine::Fhe,
                other => bail!("--engine `{other}`: cpu or fhe"),
            };
            deploy::serve::run_cluster(ClusterOptions {
                listen: a.server.listen.clone(),
                store: a.server.store.clone(),
                tls: a.server.tls.clone(),
                params: a.server.params()?,
                engine: engine.resolve(),
                limits: a.server.limits(),
            })?;
            Ok(())
        }
        ServeCommand::Main(a) => {
            deploy::serve::run_main(MainOptions {
                listen: a.server.listen.clone(),
                clusters: a.clusters.clone(),
                store: a.server.store.clone(),
                tls: a.server.tls.clone(),
                params: a.server.params()?,
                policy: if a.partial {
                    FailurePolicy::Partial
                } else {
                    FailurePolicy::Strict
                },
                deadlines: Deadlines {
                    query: Duration::from_millis(a.deadline_ms),
                    ..Deadlines::default()
                },
                limits: a.server.limits(),
            })?;
            Ok(())
        }
    }
}

/// `touchstone client`.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Generate a client: secret key, parameter set, layout and quantized model, in a
    /// folder of its own (only the client ever holds the key).
    Keygen(KeygenArgs),
    /// Enrol users (the first time: setup and the whole gallery; later: an update that
    /// adds them).
    Enrol(EnrolArgs),
    /// Remove users: their encrypted templates are replaced by zeros on the servers.
    Remove(RemoveArgs),
    /// Identify one probe: ranked decision and stage timings.
    Identify(IdentifyArgs),
    /// What the main server holds.
    Status(Connection),
}

/// Where the client's folder and the main server are.
#[derive(Args, Debug)]
pub struct Connection {
    /// The client's folder (`client keygen`).
    #[arg(long)]
    dir: PathBuf,
    /// The main server, HOST:PORT.
    #[arg(long)]
    main: String,
    /// CA folder with ca.pem, client.pem and client.key.
    #[arg(long)]
    tls: PathBuf,
}

impl Connection {
    fn remote(&self) -> Result<Remote> {
        Ok(Remote::connect(&self.main, &self.tls)?)
    }
}

/// `client keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Folder to create.
    #[arg(long)]
    dir: PathBuf,
    /// blindtouch, blindtouch-ew or columnar.
    #[arg(long, default_value = "columnar")]
    scheme: String,
    /// Parameter set (default: the scheme's).
    #[arg(long)]
    params: Option<String>,
    /// Model folder whose head (FC-1 weights, bias, threshold, calibration) scores.
    #[arg(long, conflicts_with = "synthetic_seed")]
    model: Option<PathBuf>,
    /// Instead of a model: the seeded synthetic head of `touchstone match`.
    #[arg(long)]
    synthetic_seed: Option<u64>,
    /// Quantization bits of templates and weights.
    #[arg(long, default_value_t = 8)]
    bits: u32,
}

/// `client enrol`.
#[derive(Args, Debug)]
pub struct EnrolArgs {
    #[command(flatten)]
    connection: Connection,
    /// JSON file: [{"name": "...", "template": [f32; features]}, ...].
    #[arg(long, conflicts_with = "images")]
    templates: Option<PathBuf>,
    /// A folder of fingerprint images (each file one user, named by its stem);
    /// needs --model.
    #[arg(long, requires = "model")]
    images: Option<PathBuf>,
    /// The model folder that turns images into templates.
    #[arg(long)]
    model: Option<PathBuf>,
}

/// `client remove`.
#[derive(Args, Debug)]
pub struct RemoveArgs {
    #[command(flatten)]
    connection: Connection,
    /// A user to remove (repeat).
    #[arg(long = "user", required = true)]
    users: Vec<String>,
}

/// `client identify`.
#[derive(Args, Debug)]
pub struct IdentifyArgs {
    /// `extended`: extend the query on the client (about 6× the upload; the clusters then
    /// only accumulate and scale; needs clusters on a fused engine).
    #[arg(long, default_value = "ciphertexts")]
    query_form: protocol::messages::QueryForm,
    #[command(flatten)]
    connection: Connection,
    /// JSON file: a query template, [f32; features] or {"template": [...]}.
    #[arg(long, conflicts_with = "image")]
    template: Option<PathBuf>,
    /// A fingerprint image; needs --model.
    #[arg(long, requires = "model")]
    image: Option<PathBuf>,
    /// The model folder that turns the image into a query template.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print JSON (ranking, scores, exactness check, timings) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `touchstone client …`.
pub fn client(command: &ClientCommand) -> Result<()> {
    match command {
        ClientCommand::Keygen(a) => keygen(a),
        ClientCommand::Enrol(a) => {
            let users = match (&a.templates, &a.images, &a.model) {
                (Some(file), _, _) => read_templates(file)?,
                (None, Some(images), Some(model)) => image_templates(images, model, true)?,
                _ => bail!("give --templates FILE, or --images DIR with --model DIR"),
            };
            let remote = a.connection.remote()?;
            let mut folder = ClientFolder::open(&a.connection.dir)?;
            let n = users.len();
            let ack = folder.enrol(&remote, users)?;
            println!(
                "enrolled {n} users: the gallery holds {} slots ({} live), units per cluster {:?}",
                ack.users,
                folder.live_users(),
                ack.per_cluster
            );
            Ok(())
        }
        ClientCommand::Remove(a) => {
            let remote = a.connection.remote()?;
            let mut folder = ClientFolder::open(&a.connection.dir)?;
            folder.remove(&remote, &a.users)?;
            println!(
                "removed {} users; {} live",
                a.users.len(),
                folder.live_users()
            );
            Ok(())
        }
        ClientCommand::Identify(a) => {
            let probe = match (&a.template, &a.image, &a.model) {
                (Some(file), _, _) => read_probe(file)?,
                (None, Some(image), Some(model)) => {
                    let dir = image
                        .parent()
                        .ok_or_else(|| anyhow!("{}: no parent folder", image.display()))?;
                    let all = image_templates(dir, model, false)?;
                    let stem = stem(image)?;
                    all.into_iter()
                        .find(|(n, _)| *n == stem)
                        .map(|(_, t)| t)
                        .ok_or_else(|| anyhow!("{}: not readable", image.display()))?
                }
                _ => bail!("give --template FILE, or --image FILE with --model DIR"),
            };
            let remote = a.connection.remote()?;
            let mut folder = ClientFolder::open(&a.connection.dir)?;
            folder.resend_pending(&remote)?;
            let id = folder.identify_as(&remote, &probe, a.query_form)?;
            let expected = folder.expected_scores(&probe);
            let exact = id
                .scores
                .iter()
                .zip(&expected)
                .all(|(got, want)| match got {
                    Some(g) => Some(*g) == *want,
                    None => true,
                });
            if a.json {
                println!("{}", identification_json(&id, exact));
            } else {
                print_identification(&id, exact);
            }
            if !exact {
                bail!("a decrypted score differs from the plaintext integer score");
            }
            Ok(())
        }
        ClientCommand::Status(c) => {
            let status = c.remote()?.status()?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
    }
}

fn keygen(a: &KeygenArgs) -> Result<()> {
    let layout = parse_layout(&a.scheme)?;
    let default = match layout {
        Layout::BlindTouch {
            encrypted_weights: true,
        } => "bt-8192-ew",
        Layout::BlindTouch { .. } => "bt-8192",
        Layout::Columnar => "col-8192",
    };
    let spec = ParamSpec::preset(a.params.as_deref().unwrap_or(default))?;
    let model = match (&a.model, a.synthetic_seed) {
        (Some(dir), _) => {
            let exported = train::export::load_head(dir)
                .with_context(|| format!("reading the model folder {}", dir.display()))?;
            let head = protocol::MatchModel {
                weights: exported.head.fc1_weight.clone(),
                bias: exported.head.fc1_bias,
                threshold: exported.threshold as f32,
            };
            let template = Quantizer::for_reference(a.bits, exported.calibration.abs_q999)?;
            QuantizedModel::new(&head, template, a.bits)?
        }
        (None, Some(seed)) => {
            let spec = protocol::SyntheticSpec {
                bits: a.bits,
                weight_bits: a.bits,
                ..protocol::SyntheticSpec::new(1, 1, seed)
            };
            protocol::Workload::synthetic(&spec)?.quantized
        }
        (None, None) => bail!("give --model DIR or --synthetic-seed N"),
    };
    let folder = ClientFolder::create(&a.dir, spec, layout, model)?;
    println!(
        "client {} made: {} on {}, deployment {:016x}",
        a.dir.display(),
        folder.layout_name(),
        folder.params().name,
        folder.client().deployment()
    );
    Ok(())
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: Vec<f32>,
}

/// Hostile files get a clear error: the count and sizes are bounded before use.
fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T> {
    let meta = std::fs::metadata(file).with_context(|| format!("{}", file.display()))?;
    if meta.len() > 1 << 30 {
        bail!(
            "{}: {} bytes, above the 1 GiB limit",
            file.display(),
            meta.len()
        );
    }
    let text = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{}: not the expected JSON", file.display()))
}

fn read_templates(file: &Path) -> Result<Vec<(String, Vec<f32>)>> {
    let users: Vec<NamedTemplate> = read_json(file)?;
    Ok(users.into_iter().map(|u| (u.name, u.template)).collect())
}

fn read_probe(file: &Path) -> Result<Vec<f32>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Probe {
        Bare(Vec<f32>),
        Named { template: Vec<f32> },
    }
    Ok(match read_json::<Probe>(file)? {
        Probe::Bare(t) | Probe::Named { template: t } => t,
    })
}

fn stem(path: &Path) -> Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{}: no file name", path.display()))
}

/// Templates of every image in `dir` (enrolment templates, or query templates), named
/// by file stem.
fn image_templates(dir: &Path, model: &Path, enrolment: bool) -> Result<Vec<(String, Vec<f32>)>> {
    let device = Default::default();
    let (network, exported) = train::export::load::<train::CpuBackend>(model, &device)
        .with_context(|| format!("loading the model folder {}", model.display()))?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let size = exported.model.input_size;
    let mut names = Vec::new();
    let mut images = Vec::new();
    for path in &paths {
        let image = datasets::Gray8::load(path).with_context(|| format!("{}", path.display()))?;
        let out = exported
            .pipeline
            .apply(&image)
            .with_context(|| format!("preprocessing {}", path.display()))?;
        names.push(stem(path)?);
        images.push(out);
    }
    if images.is_empty() {
        bail!("{}: no images", dir.display());
    }
    let embeddings = train::inference::embeddings(&network, &images, size, 32, &device);
    let (enrol, query) = train::inference::templates(&exported.head, &embeddings);
    Ok(names
        .into_iter()
        .zip(if enrolment { enrol } else { query })
        .collect())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_identification(id: &Identification, exact: bool) {
    match id.ranking.first() {
        Some((_, name, score)) => println!("accepted: {name} (score {score})"),
        // A partial answer cannot reject: the mate may be among the users left out.
        None if !id.missing.is_empty() => println!(
            "inconclusive: no scored user at or above the threshold, and {} users were not scored",
            id.missing.len()
        ),
        None => println!("rejected: no enrolled user at or above the threshold"),
    }
    for (rank, (_, name, score)) in id.ranking.iter().enumerate().take(10) {
        println!("  {}. {name} {score}", rank + 1);
    }
    if !id.missing.is_empty() {
        println!(
            "PARTIAL: {} users not scored (clusters failed: {:?}): {}",
            id.missing.len(),
            id.failed,
            id.missing.join(", ")
        );
    }
    let t = &id.timings;
    println!(
        "stages (ms): encrypt {:.2}, serialize {:.2}, upload {:.2} ({} B), server {:.2} \
         [fan-out {:.2}, gather {:.2}, compress {:.2}], download {:.2} ({} B), decrypt {:.2}, \
         decide {:.2}; total {:.2}",
        ms(t.encrypt),
        ms(t.serialize_query),
        ms(t.upload),
        t.upload_bytes,
        ms(t.server),
        t.main.clusters_wall_ns as f64 / 1e6,
        t.main.gather_ns as f64 / 1e6,
        t.main.compress_ns as f64 / 1e6,
        ms(t.download),
        t.download_bytes,
        ms(t.decrypt),
        ms(t.decide),
        ms(t.total())
    );
    println!(
        "exact: {}",
        if exact {
            "every decrypted score equals the plaintext integer score"
        } else {
            "NO"
        }
    );
}

fn identification_json(id: &Identification, exact: bool) -> String {
    let t = &id.timings;
    serde_json::json!({
        "accepted": id.accepted,
        "inconclusive": !id.accepted && !id.missing.is_empty(),
        "ranking": id.ranking.iter().map(|(slot, name, score)| serde_json::json!({"slot": slot, "name": name, "score": score})).collect::<Vec<_>>(),
        "scores": id.scores,
        "slots": id.slots,
        "partial": !id.missing.is_empty(),
        "missing": id.missing,
        "failed": id.failed,
        "exact": exact,
        "timings_ms": {
            "encrypt": ms(t.encrypt),
            "serialize_query": ms(t.serialize_query),
            "upload": ms(t.upload),
            "server": ms(t.server),
            "download": ms(t.download),
            "decrypt": ms(t.decrypt),
            "decide": ms(t.decide),
            "total": ms(t.total()),
        },
        "bytes": {"upload": t.upload_bytes, "download": t.download_bytes, "fanout": t.main.fanout_bytes, "gather": t.main.gather_bytes},
    })
    .to_string()
}
