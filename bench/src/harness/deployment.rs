//! The latency run of a deployed point: the roles as separate processes reached over
//! gRPC and mutual TLS (`deploy`), instead of in this process.
//!
//! `local` starts, for each point, one `touchstone serve cluster` process per cluster and
//! one `touchstone serve main` on loopback (this same binary), each with its own store in
//! a scratch folder, waits (bounded) until the main server answers, and stops them all
//! by PID afterwards — also when the point fails, through [`LocalDeployment`]'s `Drop`.
//! `remote` talks to servers someone else started. Either way the client is a
//! [`ClientFolder`], so the queries, their timings and the exactness check are the ones
//! `touchstone client` and `touchstone load` use.

use super::config::{DeploymentConfig, DeploymentMode};
use super::rows::{DeploymentRecord, Stat, STAGES};
use super::run::Latency;
use super::sweep::Point;
use anyhow::{anyhow, bail, Context, Result};
use deploy::client_folder::{layout_name, ClientFolder, Timings};
use deploy::remote::Remote;
use protocol::messages::Layout;
use protocol::{ParamSpec, SchemeKind, Workload};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the servers of one point may take to answer (start, open stores, listen).
pub const STARTUP: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Attempts at starting a deployment whose free port another process took meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// Lines of a failed server's log quoted in the error.
const TAIL_LINES: usize = 20;

/// The test CA of a run's local deployments, made once in `dir` (kept by a resumed run:
/// every point's servers and client trust the same CA).
pub fn ensure_ca(dir: &Path) -> Result<PathBuf> {
    let complete = [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ]
    .iter()
    .all(|f| dir.join(f).is_file());
    if !complete {
        if dir.exists() {
            // A half-written CA (a run killed while making it) is of no use to anyone.
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the incomplete CA folder {}", dir.display()))?;
        }
        deploy::tls::make_ca(dir, &[])
            .with_context(|| format!("making the local deployment's CA in {}", dir.display()))?;
    }
    // Absolute: the servers and the client must find it whatever their working folder.
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

/// A folder under the system's temporary directory, removed with everything in it when
/// dropped (bench's `tempfile` is a test-only dependency).
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating a folder in {}", base.display()))
                }
            }
        }
        bail!("cannot create a scratch folder in {}", base.display())
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One server process.
struct Server {
    /// `cluster 2 (127.0.0.1:40123)`, `main server (127.0.0.1:40125)`.
    role: String,
    addr: SocketAddr,
    child: Child,
    /// stdout and stderr together.
    log: PathBuf,
    store: PathBuf,
}

impl Server {
    /// The last lines of its log, indented, for an error message.
    fn tail(&self) -> String {
        tail(&self.log, TAIL_LINES)
    }

    /// `Some(description)` once the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// What a local deployment is made of.
pub struct LocalSpec<'a> {
    /// The touchstone binary (`std::env::current_exe()` in a run).
    pub exe: PathBuf,
    /// The CA folder ([`ensure_ca`]).
    pub tls: &'a Path,
    /// The parameter set's name (`--params`).
    pub params: &'a str,
    /// The clusters' engine (`--engine`: `cpu` or `fhe`).
    pub engine: &'a str,
    /// Cluster servers.
    pub clusters: usize,
    /// Pin each process to a core with `taskset -c`.
    pub pin_cores: bool,
    /// Bound on the wait for the main server to answer.
    pub startup: Duration,
}

/// A main server and its clusters as processes on loopback. Dropping it stops them
/// (SIGTERM by PID, SIGKILL after [`STOP_GRACE`]) and removes their stores.
pub struct LocalDeployment {
    /// Clusters first, the main server last.
    servers: Vec<Server>,
    main: String,
    tls: PathBuf,
    pinning: String,
    // Declared last: dropped after `Drop::drop` stopped the processes using it.
    scratch: Scratch,
}

/// Why a start failed: a port taken between choosing and binding it is worth another
/// attempt; anything else is not.
enum StartError {
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl LocalDeployment {
    /// Starts the clusters, then the main server, and returns once the main server
    /// answers `status` (within `spec.startup`; otherwise an error naming the process
    /// waited for and the end of its log). A port taken by another process between
    /// choosing and binding it is retried with new ports.
    pub fn start(spec: &LocalSpec) -> Result<Self> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(spec) {
                Ok(d) => return Ok(d),
                Err(StartError::PortTaken(e)) => last = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!(
                "{PORT_ATTEMPTS} attempts at free loopback ports failed"
            )))
    }

    fn try_start(spec: &LocalSpec) -> std::result::Result<Self, StartError> {
        let scratch = Scratch::new("touchstone-deploy")?;
        let taskset = spec.pin_cores.then(taskset_available).flatten();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut pins: Vec<(String, usize)> = Vec::new();
        let mut d = Self {
            servers: Vec::new(),
            main: String::new(),
            tls: spec.tls.to_path_buf(),
            pinning: String::new(),
            scratch,
        };
        // The main server on core 0, cluster i on core i + 1 (wrapping when there are
        // fewer cores than processes: pinning still keeps each process on one core).
        let core_of = |k: usize| k % cores;
        let tls = spec.tls.display().to_string();
        let mut cluster_addrs = Vec::new();
        for i in 0..spec.clusters {
            let addr = free_port()?;
            let store = d.scratch.path().join(format!("cluster-{i}"));
            let args = vec![
                "serve".to_string(),
                "cluster".into(),
                "--listen".into(),
                addr.to_string(),
                "--store".into(),
                store.display().to_string(),
                "--tls".into(),
                tls.clone(),
                "--params".into(),
                spec.params.into(),
                "--engine".into(),
                spec.engine.into(),
            ];
            let core = taskset.as_ref().map(|_| core_of(i + 1));
            if let Some(c) = core {
                pins.push((format!("cluster {i}"), c));
            }
            let server = d.spawn(
                spec,
                taskset.as_deref(),
                core,
                format!("cluster {i} ({addr})"),
                addr,
                store,
                &args,
            )?;
            d.servers.push(server);
            cluster_addrs.push(addr.to_string());
        }
        let deadline = Instant::now() + spec.startup;
        // Clusters must listen before the main server fans anything out to them.
        for i in 0..d.servers.len() {
            let addr = d.servers[i].addr;
            d.wait(i, (deadline, spec.startup), &mut || {
                Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
            })?;
        }
        let addr = free_port()?;
        let store = d.scratch.path().join("main");
        let mut args = vec![
            "serve".to_string(),
            "main".into(),
            "--listen".into(),
            addr.to_string(),
        ];
        for c in &cluster_addrs {
            args.push("--cluster".into());
            args.push(c.clone());
        }
        args.extend([
            "--store".into(),
            store.display().to_string(),
            "--tls".into(),
            tls.clone(),
            "--params".into(),
            spec.params.into(),
        ]);
        let core = taskset.as_ref().map(|_| core_of(0));
        if let Some(c) = core {
            pins.insert(0, ("main".into(), c));
        }
        let server = d.spawn(
            spec,
            taskset.as_deref(),
            core,
            format!("main server ({addr})"),
            addr,
            store,
            &args,
        )?;
        d.servers.push(server);
        d.main = addr.to_string();
        let main_index = d.servers.len() - 1;
        let (main, tls_dir) = (d.main.clone(), d.tls.clone());
        d.wait(main_index, (deadline, spec.startup), &mut || {
            Ok(Remote::connect(&main, &tls_dir)
                .and_then(|r| r.with_deadline(Duration::from_secs(5)).status())
                .is_ok())
        })?;
        d.pinning = match (spec.pin_cores, &taskset) {
            (false, _) => "not pinned".into(),
            (true, None) => "not pinned: taskset missing".into(),
            (true, Some(_)) => format!(
                "taskset: {}",
                pins.iter()
                    .map(|(role, core)| format!("{role}→{core}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        spec: &LocalSpec,
        taskset: Option<&Path>,
        core: Option<usize>,
        role: String,
        addr: SocketAddr,
        store: PathBuf,
        args: &[String],
    ) -> Result<Server> {
        let slug: String = role.split(' ').take(2).collect::<Vec<_>>().join("-");
        let log = self.scratch.path().join(format!("{slug}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let mut command = match (taskset, core) {
            (Some(taskset), Some(core)) => {
                let mut c = Command::new(taskset);
                c.arg("-c").arg(core.to_string()).arg(&spec.exe);
                c
            }
            _ => Command::new(&spec.exe),
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .with_context(|| format!("starting {role}: {}", spec.exe.display()))?;
        Ok(Server {
            role,
            addr,
            child,
            log,
            store,
        })
    }

    /// Polls `ready` until it holds, the process `index` waits on exits, or `deadline`
    /// passes; any server exiting meanwhile is an error naming it, with its log's end.
    fn wait(
        &mut self,
        index: usize,
        (deadline, limit): (Instant, Duration),
        ready: &mut dyn FnMut() -> Result<bool>,
    ) -> std::result::Result<(), StartError> {
        loop {
            for server in &mut self.servers {
                if let Some(status) = server.exited() {
                    let tail = server.tail();
                    let e = anyhow!(
                        "local deployment: {} exited ({status}) before it was ready; its output ends:\n{tail}",
                        server.role
                    );
                    let taken = tail.contains("Address already in use")
                        || tail.contains("address already in use")
                        || tail.contains("AddrInUse");
                    return Err(if taken {
                        StartError::PortTaken(e)
                    } else {
                        StartError::Other(e)
                    });
                }
            }
            if ready()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let server = &self.servers[index];
                return Err(StartError::Other(anyhow!(
                    "local deployment: {} did not answer within {:.0} s; its output ends:\n{}",
                    server.role,
                    limit.as_secs_f64(),
                    server.tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The main server's address.
    pub fn main(&self) -> &str {
        &self.main
    }

    /// The CA folder its processes and clients use.
    pub fn tls(&self) -> &Path {
        &self.tls
    }

    /// How the processes were pinned.
    pub fn pinning(&self) -> &str {
        &self.pinning
    }

    /// A folder for the client, removed with the deployment.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Bytes the clusters' stores hold on disk.
    pub fn cluster_store_bytes(&self) -> u64 {
        self.servers
            .iter()
            .filter(|s| s.role.starts_with("cluster"))
            .map(|s| folder_bytes(&s.store))
            .sum()
    }

    /// Stops every process: SIGTERM to all (the main server first), then each is
    /// waited for until [`STOP_GRACE`] has passed since, and killed if still running.
    /// Returns what needed killing.
    pub fn stop(&mut self) -> Vec<String> {
        let mut killed = Vec::new();
        for server in self.servers.iter_mut().rev() {
            if server.exited().is_none() {
                terminate(&mut server.child);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for server in self.servers.iter_mut().rev() {
            while server.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if server.exited().is_none() {
                let _ = server.child.kill();
                let _ = server.child.wait();
                killed.push(server.role.clone());
            }
        }
        self.servers.clear();
        killed
    }
}

impl Drop for LocalDeployment {
    fn drop(&mut self) {
        for role in self.stop() {
            eprintln!(
                "note: {role} did not stop within {:.0} s of SIGTERM; killed",
                STOP_GRACE.as_secs_f64()
            );
        }
    }
}

/// SIGTERM by PID (`kill -TERM`: bench has no libc binding); a process that cannot be
/// signalled that way is killed.
fn terminate(child: &mut Child) {
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.kill();
    }
}

/// A loopback port free at the time of asking (the OS picks it); another process may take
/// it before the server binds it, which [`LocalDeployment::start`] retries.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?)
}

/// `taskset` on the PATH, if any.
fn taskset_available() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("taskset"))
        .find(|p| p.is_file())
}

/// The last `lines` lines of a file (at most 64 KiB read), indented.
fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return "    (no output)".into();
    }
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The layout a point's scheme uses.
pub fn layout_of(point: &Point) -> Layout {
    match point.scheme {
        SchemeKind::BlindTouch => Layout::BlindTouch {
            encrypted_weights: point.encrypted_weights,
        },
        _ => Layout::Columnar,
    }
}

/// The clusters' `--engine`: the point's for columnar; blindtouch always runs fhe.rs.
fn engine_arg(point: &Point) -> &'static str {
    match point.scheme {
        SchemeKind::Columnar => point.engine.name(),
        _ => "fhe",
    }
}

/// The latency run of a deployed point: its servers (started here for `local`), a
/// client folder with the point's parameters, layout and quantized model, the gallery
/// enrolled as users `u0`…, every probe identified `repetitions` times, each decrypted
/// score compared with the client's plaintext score (any difference fails the point).
pub fn latency(
    point: &Point,
    deployment: &DeploymentConfig,
    spec: ParamSpec,
    workload: &Workload,
    repetitions: usize,
    run_dir: &Path,
) -> Result<Latency> {
    if !point.scheme.encrypted() {
        bail!(
            "scheme `{}` cannot be deployed (validated configs never ask for it)",
            point.scheme
        );
    }
    let layout = layout_of(point);
    match point.deployment {
        DeploymentMode::InProcess => bail!("in-process points do not run here"),
        DeploymentMode::Local => {
            let tls = ensure_ca(&run_dir.join("tls"))?;
            let exe = std::env::current_exe().context("locating the touchstone binary")?;
            let local = LocalDeployment::start(&LocalSpec {
                exe,
                tls: &tls,
                params: &spec.name,
                engine: engine_arg(point),
                clusters: point.clusters,
                pin_cores: deployment.pin_cores,
                startup: STARTUP,
            })?;
            let remote = Remote::connect(local.main(), local.tls())
                .with_context(|| format!("connecting to {}", local.main()))?;
            let folder = ClientFolder::create(
                &local.scratch().join("client"),
                spec,
                layout,
                workload.quantized.clone(),
            )?;
            let mut measured = measure(point, folder, &remote, workload, repetitions, true)?;
            let status = remote.status()?;
            measured.engine_running = match point.scheme {
                SchemeKind::Columnar => point.engine.resolve().running().to_string(),
                _ => "fhe".into(),
            };
            measured.deployment = Some(DeploymentRecord {
                main: local.main().to_string(),
                clusters: status.clusters,
                pinning: local.pinning().to_string(),
                store_bytes: Some(local.cluster_store_bytes()),
            });
            drop(remote);
            drop(local);
            Ok(measured)
        }
        DeploymentMode::Remote => {
            let main = deployment
                .main
                .as_deref()
                .ok_or_else(|| anyhow!("deployment.main is required for mode remote"))?;
            let tls = deployment
                .tls
                .as_deref()
                .ok_or_else(|| anyhow!("deployment.tls is required for mode remote"))?;
            let remote = Remote::connect(main, tls)
                .with_context(|| format!("connecting to the remote main server {main}"))?;
            let folder = remote_client(&run_dir.join("remote-client"), spec, layout, workload)?;
            let status = remote.status()?;
            let mine = format!("{:016x}", folder.client().deployment());
            let enrolled = !folder.users().is_empty();
            let enrol = match (&status.deployment, enrolled) {
                (None, false) => true,
                (Some(d), true) if *d == mine && status.users == workload.gallery.len() => false,
                (Some(d), false) if *d == mine => true,
                (None, true) => bail!(
                    "the remote main server {main} serves no deployment, but {} enrolled this \
                     run's gallery there earlier (its stores were reset?); delete that folder \
                     to enrol again",
                    run_dir.join("remote-client").display()
                ),
                (Some(d), _) if *d != mine => bail!(
                    "the remote main server {main} serves deployment {d}, not this run's client \
                     {mine}: a main server binds to one client until its operator resets it"
                ),
                (Some(_), _) => bail!(
                    "the remote main server {main} holds {} users of this run's client, the \
                     point needs {}",
                    status.users,
                    workload.gallery.len()
                ),
            };
            let mut measured = measure(point, folder, &remote, workload, repetitions, enrol)?;
            measured.engine_running = "remote".into();
            measured.deployment = Some(DeploymentRecord {
                main: main.to_string(),
                clusters: status.clusters,
                pinning: "-".into(),
                store_bytes: None,
            });
            Ok(measured)
        }
    }
}

/// The run folder's client of a remote deployment: created on the first remote point,
/// reopened by later ones and by a resumed run (the main server stays bound to it).
fn remote_client(
    dir: &Path,
    spec: ParamSpec,
    layout: Layout,
    workload: &Workload,
) -> Result<ClientFolder> {
    if !dir.join("client.json").exists() {
        return Ok(ClientFolder::create(
            dir,
            spec,
            layout,
            workload.quantized.clone(),
        )?);
    }
    let folder = ClientFolder::open(dir)?;
    let same_users = folder.users().is_empty()
        || (folder.users().len() == workload.gallery.len()
            && folder
                .users()
                .iter()
                .zip(&workload.gallery)
                .all(|(u, g)| !u.removed && u.template == *g));
    if folder.params().name != spec.name
        || folder.layout_name() != layout_name(layout)
        || !same_users
    {
        bail!(
            "{} holds a client of another configuration (params {}, layout {}, {} users); \
             the point needs params {}, layout {}, {} users",
            dir.display(),
            folder.params().name,
            folder.layout_name(),
            folder.users().len(),
            spec.name,
            layout_name(layout),
            workload.gallery.len()
        );
    }
    Ok(folder)
}

/// Enrols (when asked) and times every query; checks every decrypted score.
fn measure(
    point: &Point,
    mut folder: ClientFolder,
    remote: &Remote,
    workload: &Workload,
    repetitions: usize,
    enrol: bool,
) -> Result<Latency> {
    let keygen_start = Instant::now();
    let key_bytes = folder.client().setup_message()?.1.total;
    let keygen_ms = keygen_start.elapsed().as_secs_f64() * 1e3;
    let mut enrol_ms = 0.0;
    if enrol {
        folder.ensure_setup(remote)?;
        let users: Vec<(String, Vec<f32>)> = workload
            .gallery
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("u{i}"), t.clone()))
            .collect();
        let start = Instant::now();
        folder.enrol(remote, users)?;
        enrol_ms = start.elapsed().as_secs_f64() * 1e3;
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut cluster_eval = Vec::new();
    let mut check = Exactness::default();
    let mut last: Option<Timings> = None;
    let mut queries = 0usize;
    for _ in 0..repetitions {
        for (p, probe) in workload.probes.iter().enumerate() {
            let id = folder
                .identify(remote, &probe.template)
                .with_context(|| format!("probe {p} through {}", remote.addr()))?;
            if !id.missing.is_empty() || !id.failed.is_empty() {
                bail!(
                    "probe {p}: a partial answer (clusters failed: {:?}; {} users not scored)",
                    id.failed,
                    id.missing.len()
                );
            }
            check.compare(p, &folder.expected_scores(&probe.template), &id.scores);
            let t = &id.timings;
            for (name, ms) in stage_values(t) {
                let i = STAGES.iter().position(|s| *s == name).expect("a stage");
                samples[i].push(ms);
            }
            let slowest = t.main.cluster_eval_ns.iter().copied().max().unwrap_or(0);
            cluster_eval.push(slowest as f64 / 1e6);
            queries += 1;
            last = Some(id.timings);
        }
    }
    check.require(&format!(
        "{} latency run ({})",
        point.scheme, point.deployment
    ))?;
    let last = last.ok_or_else(|| anyhow!("no query was made (no probes or repetitions)"))?;
    Ok(Latency {
        stages: samples
            .into_iter()
            .map(|s| (!s.is_empty()).then(|| Stat::of(s)))
            .collect(),
        cluster_eval: Stat::of(cluster_eval),
        keygen_ms,
        enrol_ms,
        key_bytes,
        // What the clusters store is not reported over the network; the local
        // deployment records its stores' size on disk instead.
        gallery_bytes: 0,
        upload_bytes: last.upload_bytes,
        download_bytes: last.download_bytes,
        fanout_bytes: Some(last.main.fanout_bytes),
        gather_bytes: Some(last.main.gather_bytes),
        result_ciphertexts: last.main.result_ciphertexts,
        noise_budget_bits: None,
        exact: Some(true),
        queries,
        engine_running: String::new(),
        deployment: None,
    })
}

/// A deployed query's stages, in milliseconds, named as [`STAGES`]: the client's own,
/// the socket transfers, and the main server's stages, adding up to the client's total.
///
/// The client splits its wait into upload and server time at the main server's
/// `received` marker, which can reach it late (it shares the connection with the
/// upload's tail), so the server time it sees may be shorter than the stages the main
/// server timed on its own clock. The main server's stages are taken as measured, and
/// the difference is taken from the upload — which stays an upper bound of the true
/// upload, since the marker can only be late. `server_other` is the rest of the server
/// time: reassembling the query and framing the answer. `download` runs from the main
/// server's `sending` marker (sent just before the answer) to the answer's last byte.
pub fn stage_values(t: &Timings) -> Vec<(&'static str, f64)> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ns = |n: u64| n as f64 / 1e6;
    let m = &t.main;
    let staged = m.check_ns + m.clusters_wall_ns + m.gather_ns + m.compress_ns + m.serialize_ns;
    let server = t.server.as_nanos() as u64;
    let late_marker = staged.saturating_sub(server);
    let upload = (t.upload.as_nanos() as u64).saturating_sub(late_marker);
    let other = server.saturating_sub(staged);
    vec![
        ("encrypt", ms(t.encrypt)),
        ("serialize_query", ms(t.serialize_query) + ns(m.check_ns)),
        ("upload", ns(upload)),
        ("clusters_wall", ns(m.clusters_wall_ns)),
        ("gather", ns(m.gather_ns)),
        ("compress", ns(m.compress_ns)),
        ("serialize_results", ns(m.serialize_ns)),
        ("server_other", ns(other)),
        ("download", ms(t.download)),
        ("decrypt", ms(t.decrypt)),
        ("decide", ms(t.decide)),
        ("total", ms(t.total())),
    ]
}

/// Decrypted scores against the client's plaintext scores, as `protocol::Tally` does
/// in process.
#[derive(Default, Debug)]
pub struct Exactness {
    /// Scores compared.
    pub checked: u64,
    /// Scores that differ (a missing or extra score counts as differing).
    pub differing: u64,
    /// The first difference: probe, user slot, decrypted, expected.
    pub first: Option<(usize, usize, Option<i64>, Option<i64>)>,
}

impl Exactness {
    /// Compares one answer's scores with the expected ones.
    pub fn compare(&mut self, probe: usize, expected: &[Option<i64>], got: &[Option<i64>]) {
        for u in 0..expected.len().max(got.len()) {
            let (e, g) = (
                expected.get(u).copied().flatten(),
                got.get(u).copied().flatten(),
            );
            self.checked += 1;
            if e != g || u >= expected.len() || u >= got.len() {
                self.differing += 1;
                self.first.get_or_insert((probe, u, g, e));
            }
        }
    }

    /// An error unless every score was equal (and some were compared).
    pub fn require(&self, what: &str) -> Result<()> {
        if self.checked == 0 {
            bail!("{what}: no score was checked, so exactness is unknown");
        }
        if self.differing == 0 {
            return Ok(());
        }
        let show = |v: Option<i64>| v.map_or("nothing".to_string(), |v| v.to_string());
        let first = self.first.map_or(String::new(), |(p, u, g, e)| {
            format!(
                "; first: probe {p} user {u} decrypted {} instead of {}",
                show(g),
                show(e)
            )
        });
        bail!(
            "{what}: NOT EXACT — {} of {} decrypted scores differ from the plaintext integer scores{first}",
            self.differing,
            self.checked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactness_counts_differences_and_missing_scores() {
        let mut e = Exactness::default();
        e.compare(0, &[Some(1), None, Some(3)], &[Some(1), None, Some(3)]);
        assert!(e.require("x").is_ok());
        e.compare(1, &[Some(1), Some(2)], &[Some(1), Some(5)]);
        e.compare(2, &[Some(1), Some(2)], &[Some(1)]);
        let msg = e.require("columnar").unwrap_err().to_string();
        assert!(msg.contains("NOT EXACT") && msg.contains("2 of 7"), "{msg}");
        assert!(
            msg.contains("probe 1 user 1 decrypted 5 instead of 2"),
            "{msg}"
        );
        assert!(Exactness::default().require("x").is_err());
    }

    #[test]
    fn deployed_stages_add_up_to_the_total() {
        let mut t = Timings {
            encrypt: Duration::from_millis(3),
            serialize_query: Duration::from_millis(2),
            upload: Duration::from_millis(1),
            server: Duration::from_millis(20),
            download: Duration::from_millis(1),
            decrypt: Duration::from_millis(4),
            decide: Duration::from_millis(1),
            ..Timings::default()
        };
        t.main.check_ns = 1_000_000;
        t.main.clusters_wall_ns = 15_000_000;
        t.main.gather_ns = 1_000_000;
        t.main.compress_ns = 1_000_000;
        t.main.serialize_ns = 500_000;
        let values = stage_values(&t);
        let names: Vec<&str> = values.iter().map(|v| v.0).collect();
        assert_eq!(names, STAGES);
        let parts: f64 = values[..values.len() - 1].iter().map(|v| v.1).sum();
        let total = values.last().unwrap().1;
        assert!((parts - total).abs() < 1e-9, "{parts} vs {total}");
        let other = values.iter().find(|v| v.0 == "server_other").unwrap().1;
        assert!((other - 1.5).abs() < 1e-9, "{other}");
        // A late `received` marker: the server time seen is shorter than the main
        // server's stages; the upload gives up the difference, the sum still holds.
        t.upload = Duration::from_millis(10);
        t.server = Duration::from_millis(15);
        let values = stage_values(&t);
        let get = |name: &str| values.iter().find(|v| v.0 == name).unwrap().1;
        assert!((get("upload") - 6.5).abs() < 1e-9, "{}", get("upload"));
        assert_eq!(get("server_other"), 0.0);
        let parts: f64 = values[..values.len() - 1].iter().map(|v| v.1).sum();
        assert!((parts - get("total")).abs() < 1e-9, "{parts}");
    }

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let dir = Scratch::new("touchstone-test").unwrap();
        let log = dir.path().join("x.log");
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let t = tail(&log, 3);
        assert_eq!(t, "    line 47\n    line 48\n    line 49");
        assert_eq!(tail(&dir.path().join("none"), 3), "    (no output)");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists(), "a scratch folder is removed when dropped");
    }
}
