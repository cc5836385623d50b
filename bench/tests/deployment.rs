//! The deployment end to end, as separate processes on loopback: a main server and 3
//! cluster servers over mutual TLS, persistent stores, a client enrolling 2,000 users and
//! identifying 10 probes — every decrypted score equal to the plaintext integer score —
//! for `blindtouch` and `columnar` (fused CPU engine). Then the failures: a cluster
//! killed with SIGKILL (strict: an error naming it; partial: flagged, missing users
//! listed), restarted on its store (exact again, no re-enrolment), users added and
//! removed, a byte flipped in a stored shard, certificates of another CA, a message over
//! the size limit, and 8 concurrent clients.
//!
//! Every wait is bounded; every process is stopped by PID when the test ends.

mod common;

use common::{committed_model, text, touchstone};
use deploy::client_folder::ClientFolder;
use deploy::remote::Remote;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(name: &str, args: &[String], dir: &Path) -> Server {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_touchstone"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("touchstone starts");
        Server {
            name: name.into(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says it listens (bounded), or panics with the log.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.log().contains("listening on") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not start within 60 s: {}", self.name, self.log());
    }

    /// Waits for the process to exit by itself (bounded); its status and log.
    fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit within 60 s: {}", self.name, self.log());
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {}", self.name);
    }

    /// SIGTERM, then the exit (a clean shutdown).
    fn stop(mut self) -> String {
        self.signal("-TERM");
        let (status, log) = self.wait_exit();
        assert!(
            status.success(),
            "{} after SIGTERM: {status}: {log}",
            self.name
        );
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Free loopback ports (bound and released; the servers bind them right after).
fn ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

struct Deployment {
    root: PathBuf,
    tls: PathBuf,
    params: String,
    cluster_ports: Vec<u16>,
    main_port: u16,
    clusters: Vec<Option<Server>>,
    main: Option<Server>,
}

impl Deployment {
    fn new(root: &Path, params: &str) -> Deployment {
        let tls = root.join("tls");
        let o = touchstone(&["serve", "ca", "--out", tls.to_str().unwrap()], root);
        assert!(o.status.success(), "{}", text(&o));
        let mut p = ports(4);
        let main_port = p.pop().unwrap();
        let mut d = Deployment {
            root: root.to_path_buf(),
            tls,
            params: params.into(),
            cluster_ports: p,
            main_port,
            clusters: Vec::new(),
            main: None,
        };
        for c in 0..3 {
            let server = d.start_cluster(c);
            d.clusters.push(Some(server));
        }
        d.main = Some(d.start_main(false));
        d
    }

    fn cluster_args(&self, c: usize, tls: &Path) -> Vec<String> {
        let store = self.root.join(format!("cluster{c}"));
        let mut a = s(&[
            "serve",
            "cluster",
            "--engine",
            "cpu",
            "--params",
            &self.params,
        ]);
        a.extend(s(&[
            "--listen",
            &addr(self.cluster_ports[c]),
            "--store",
            store.to_str().unwrap(),
            "--tls",
            tls.to_str().unwrap(),
        ]));
        a
    }

    fn start_cluster(&self, c: usize) -> Server {
        let mut server = Server::start(
            &format!("cluster{c}"),
            &self.cluster_args(c, &self.tls),
            &self.root,
        );
        server.wait_listening();
        server
    }

    fn start_main(&self, partial: bool) -> Server {
        let store = self.root.join("main");
        let mut a = s(&["serve", "main", "--params", &self.params]);
        a.extend(s(&[
            "--listen",
            &addr(self.main_port),
            "--store",
            store.to_str().unwrap(),
            "--tls",
            self.tls.to_str().unwrap(),
            "--deadline-ms",
            "20000",
        ]));
        for &p in &self.cluster_ports {
            a.extend(s(&["--cluster", &addr(p)]));
        }
        if partial {
            a.push("--partial".into());
        }
        let mut server = Server::start("main", &a, &self.root);
        server.wait_listening();
        server
    }

    fn client_args(&self, command: &str, client: &Path) -> Vec<String> {
        s(&[
            "client",
            command,
            "--dir",
            client.to_str().unwrap(),
            "--main",
            &addr(self.main_port),
            "--tls",
            self.tls.to_str().unwrap(),
        ])
    }

    fn run(&self, args: &[String]) -> std::process::Output {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        touchstone(&refs, &self.root)
    }
}

/// Templates of `users` synthetic identities and probes of the first `probes` of them.
fn write_templates(dir: &Path, first: usize, users: usize) -> PathBuf {
    let set = protocol::synthetic::generate(first + users, 0, 16, 0.2, 77);
    let list: Vec<serde_json::Value> = (first..first + users)
        .map(|u| serde_json::json!({"name": format!("u{u}"), "template": set.gallery[u]}))
        .collect();
    let path = dir.join(format!("templates-{first}-{users}.json"));
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    path
}

fn probe_file(dir: &Path, name: &str, template: &[f32]) -> PathBuf {
    let path = dir.join(format!("probe-{name}.json"));
    std::fs::write(&path, serde_json::to_vec(template).unwrap()).unwrap();
    path
}

/// Runs `client identify --json`; the parsed answer, or the error text.
fn identify(d: &Deployment, client: &Path, probe: &Path) -> Result<serde_json::Value, String> {
    let mut args = d.client_args("identify", client);
    args.extend(s(&["--template", probe.to_str().unwrap(), "--json"]));
    let o = d.run(&args);
    if !o.status.success() {
        return Err(text(&o));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    Ok(serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {out}")))
}

/// Checks an answer: exact, not partial, every live user scored.
fn assert_exact_full(answer: &serde_json::Value, live: usize) {
    assert_eq!(answer["exact"], true, "{answer}");
    assert_eq!(answer["partial"], false, "{answer}");
    let scored = answer["scores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s.is_null())
        .count();
    assert_eq!(scored, live, "{answer}");
}

fn exercise(scheme: &str, params: &str, root: &Path) {
    let mut d = Deployment::new(root, params);
    let client = root.join("client");
    let model = committed_model();
    let o = touchstone(
        &[
            "client",
            "keygen",
            "--dir",
            client.to_str().unwrap(),
            "--scheme",
            scheme,
            "--model",
            model.to_str().unwrap(),
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));

    // 2,000 users, 10 probes: every score exact.
    let templates = write_templates(root, 0, 2000);
    let mut args = d.client_args("enrol", &client);
    args.extend(s(&["--templates", templates.to_str().unwrap()]));
    let o = d.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let set = protocol::synthetic::generate(2100, 0, 16, 0.2, 77);
    let folder = ClientFolder::open(&client).unwrap();
    let probes: Vec<PathBuf> = (0..10)
        .map(|i| {
            let user = i * 199;
            let q = folder.client().model().quantize(&set.gallery[user]);
            assert_eq!(q.len(), 16);
            probe_file(root, &format!("{i}"), &set.gallery[user])
        })
        .collect();
    for probe in &probes {
        let answer = identify(&d, &client, probe).unwrap();
        assert_exact_full(&answer, 2000);
    }
    if scheme == "columnar" {
        // The extended query form over the same gRPC services: exact as well.
        let mut args = d.client_args("identify", &client);
        args.extend(s(&[
            "--template",
            probes[3].to_str().unwrap(),
            "--json",
            "--query-form",
            "extended",
        ]));
        let o = d.run(&args);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let answer: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_exact_full(&answer, 2000);
        assert!(
            answer["bytes"]["upload"].as_u64().unwrap_or(0) > 8 << 20,
            "{answer}"
        );
    }

    // SIGKILL one cluster: a strict main fails naming it.
    let victim = 1;
    let killed = d.clusters[victim].take().unwrap();
    killed.signal("-KILL");
    drop(killed);
    let e = identify(&d, &client, &probes[0]).unwrap_err();
    assert!(
        e.contains(&format!("cluster {victim}")) && e.contains(&addr(d.cluster_ports[victim])),
        "{e}"
    );
    // The same main, restarted with --partial on its store: flagged partial, the
    // missing users listed, the others exact.
    d.main.take().unwrap().stop();
    d.main = Some(d.start_main(true));
    let answer = identify(&d, &client, &probes[0]).unwrap();
    assert_eq!(answer["partial"], true, "{answer}");
    assert_eq!(answer["exact"], true, "{answer}");
    let missing = answer["missing"].as_array().unwrap().len();
    let scored = answer["scores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s.is_null())
        .count();
    assert!(
        missing > 0 && scored + missing == 2000,
        "{missing} missing, {scored} scored"
    );
    // blindtouch: 4 ciphertexts over 3 clusters, the others still answer; columnar: the
    // one group of 2,000 users is split over all 3 clusters and is left out whole.
    if scheme == "blindtouch" {
        assert!(scored > 0, "{missing} missing, {scored} scored");
    }
    // The cluster restarted on its store: exact again, without re-enrolment.
    d.clusters[victim] = Some(d.start_cluster(victim));
    let answer = identify(&d, &client, &probes[1]).unwrap();
    assert_exact_full(&answer, 2000);

    // Add 100 users and remove 10: exact for the new set; a removed user never matches.
    let more = write_templates(root, 2000, 100);
    let mut args = d.client_args("enrol", &client);
    args.extend(s(&["--templates", more.to_str().unwrap()]));
    let o = d.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let removed: Vec<String> = (0..10).map(|i| format!("u{}", i * 199)).collect();
    let mut args = d.client_args("remove", &client);
    for r in &removed {
        args.extend(s(&["--user", r]));
    }
    let o = d.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let new_probe = probe_file(root, "new", &set.gallery[2050]);
    let answer = identify(&d, &client, &new_probe).unwrap();
    assert_exact_full(&answer, 2090);
    let folder = ClientFolder::open(&client).unwrap();
    let m = folder.client().model();
    for (i, probe) in probes.iter().enumerate() {
        let answer = identify(&d, &client, probe).unwrap();
        assert_exact_full(&answer, 2090);
        for entry in answer["ranking"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            assert!(
                !removed.iter().any(|r| r == name),
                "{name} was removed: {answer}"
            );
        }
        // The removed user's slot on the servers holds zeros: its decrypted score is
        // what a template of zeros scores, not what its own template scored.
        let user = i * 199;
        let q = m.quantize(&set.gallery[user]);
        let zero = m.score(&q, &vec![0; m.features()]);
        let own = m.score(&q, &m.quantize(&set.gallery[user]));
        assert_eq!(answer["slots"][user], zero, "slot of removed u{user}");
        assert_ne!(zero, own);
    }

    // A byte flipped in a stored shard: the cluster refuses to start, naming the file.
    let flipped = 2;
    d.clusters[flipped].take().unwrap().stop();
    let db = root.join(format!("cluster{flipped}/cluster.sqlite"));
    // Flip a byte inside a stored gallery ciphertext (found in the file by a window of
    // its bytes), so the damage is in the shard itself, not in SQLite's bookkeeping.
    let unit = {
        let store =
            deploy::store::ClusterStore::open(&root.join(format!("cluster{flipped}"))).unwrap();
        let snapshot = store.load().unwrap().expect("a stored shard");
        snapshot.units[0].1.clone()
    };
    let window = &unit[unit.len() / 2..unit.len() / 2 + 64];
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == window)
        .expect("the unit's bytes are in the file")
        + 32;
    bytes[at] ^= 0x40;
    std::fs::write(&db, &bytes).unwrap();
    let mut refused = Server::start("flipped", &d.cluster_args(flipped, &d.tls), root);
    let (status, log) = refused.wait_exit();
    assert!(!status.success() && log.contains("cluster.sqlite"), "{log}");
    bytes[at] ^= 0x40;
    std::fs::write(&db, &bytes).unwrap();
    d.clusters[flipped] = Some(d.start_cluster(flipped));
    let answer = identify(&d, &client, &new_probe).unwrap();
    assert_exact_full(&answer, 2090);

    // Clean shutdowns.
    d.main.take().unwrap().stop();
    for c in d.clusters.iter_mut() {
        c.take().unwrap().stop();
    }
}

#[test]
fn columnar_deployment_over_processes_is_exact_and_survives_failures() {
    let tmp = tempfile::tempdir().unwrap();
    exercise("columnar", "col-8192", tmp.path());
}

#[test]
fn blindtouch_deployment_over_processes_is_exact_and_survives_failures() {
    let tmp = tempfile::tempdir().unwrap();
    exercise("blindtouch", "bt-8192", tmp.path());
}

/// Another CA's certificates are refused on both links; a message over the size limit
/// gets an error status; 8 concurrent clients × 20 queries all come back exact.
#[test]
fn foreign_certificates_oversized_messages_and_concurrent_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = Deployment::new(root, "col-8192");
    let client = root.join("client");
    let o = touchstone(
        &[
            "client",
            "keygen",
            "--dir",
            client.to_str().unwrap(),
            "--synthetic-seed",
            "5",
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let templates = write_templates(root, 0, 300);
    let mut args = d.client_args("enrol", &client);
    args.extend(s(&["--templates", templates.to_str().unwrap()]));
    assert!(d.run(&args).status.success());

    // A client holding another CA's certificate is refused by the main server: it trusts
    // the deployment's CA (so it would accept the server), but its own certificate is
    // not the deployment's.
    let other = root.join("other-ca");
    let o = touchstone(&["serve", "ca", "--out", other.to_str().unwrap()], root);
    assert!(o.status.success(), "{}", text(&o));
    let mixed = root.join("mixed-ca");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(d.tls.join("ca.pem"), mixed.join("ca.pem")).unwrap();
    for f in ["client.pem", "client.key"] {
        std::fs::copy(other.join(f), mixed.join(f)).unwrap();
    }
    let e = Remote::connect(&addr(d.main_port), &mixed)
        .and_then(|r| r.status())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&addr(d.main_port)), "{e}");
    // The same client with the deployment's certificate gets through.
    assert!(Remote::connect(&addr(d.main_port), &d.tls)
        .and_then(|r| r.status())
        .is_ok());

    // A cluster with another CA's certificate: the main server cannot reach it, and
    // the error names it.
    let p = ports(2);
    let mut foreign = Server::start(
        "foreign-cluster",
        &s(&[
            "serve",
            "cluster",
            "--listen",
            &addr(p[0]),
            "--store",
            root.join("foreign-store").to_str().unwrap(),
            "--tls",
            other.to_str().unwrap(),
        ]),
        root,
    );
    foreign.wait_listening();
    let mut small_main = Server::start(
        "small-main",
        &s(&[
            "serve",
            "main",
            "--listen",
            &addr(p[1]),
            "--store",
            root.join("small-main").to_str().unwrap(),
            "--tls",
            d.tls.to_str().unwrap(),
            "--cluster",
            &addr(p[0]),
            "--max-message-mib",
            "1",
        ]),
        root,
    );
    small_main.wait_listening();
    let client2 = root.join("client2");
    let o = touchstone(
        &[
            "client",
            "keygen",
            "--dir",
            client2.to_str().unwrap(),
            "--synthetic-seed",
            "6",
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut args = s(&[
        "client",
        "enrol",
        "--dir",
        client2.to_str().unwrap(),
        "--main",
        &addr(p[1]),
        "--tls",
        d.tls.to_str().unwrap(),
        "--templates",
        templates.to_str().unwrap(),
    ]);
    let o = d.run(&args);
    let e = text(&o);
    assert!(
        !o.status.success() && e.contains("cluster 0") && e.contains(&addr(p[0])),
        "{e}"
    );
    // Over the size limit: a query of 16 ciphertexts is ~4 MB, the limit 1 MiB.
    args[1] = "identify".into();
    let last = args.len() - 2;
    args[last] = "--template".into();
    args[last + 1] = probe_file(root, "p", &[0.1; 16]).to_str().unwrap().into();
    let o = d.run(&args);
    let e = text(&o);
    assert!(
        !o.status.success() && e.contains("above this server's limit"),
        "{e}"
    );
    small_main.stop();
    foreign.stop();

    // 8 concurrent clients (connections) × 20 queries, every one exact.
    let set = protocol::synthetic::generate(300, 0, 16, 0.2, 77);
    let folder = ClientFolder::open(&client).unwrap();
    std::thread::scope(|scope| {
        for c in 0..8 {
            let folder = &folder;
            let set = &set;
            let d = &d;
            scope.spawn(move || {
                let remote = Remote::connect(&addr(d.main_port), &d.tls).unwrap();
                for q in 0..20 {
                    let probe = &set.gallery[(c * 37 + q * 11) % 300];
                    let id = folder.identify(&remote, probe).unwrap();
                    let want = folder.expected_scores(probe);
                    assert_eq!(id.scores, want, "client {c} query {q}");
                }
            });
        }
    });
}

/// Enrolment and identification from fingerprint images through a model folder: the
/// client turns each image into a template with the committed model (enrolment and query
/// orientation), and every decrypted score is exact.
#[test]
fn images_enrol_and_identify_through_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let prints = root.join("prints");
    let o = touchstone(
        &[
            "synth",
            "--preset",
            "socofing",
            "--fingers",
            "1",
            "--seed",
            "4",
            "--no-altered",
            "--no-report",
            "--out",
            prints.to_str().unwrap(),
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let real = prints.join("SOCOFing/Real");
    let mut images: Vec<PathBuf> = std::fs::read_dir(&real)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    assert!(images.len() >= 5, "{images:?}");
    let d = Deployment::new(root, "col-8192");
    let client = root.join("client");
    let model = committed_model();
    let o = touchstone(
        &[
            "client",
            "keygen",
            "--dir",
            client.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut args = d.client_args("enrol", &client);
    args.extend(s(&[
        "--images",
        real.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]));
    let o = d.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let folder = ClientFolder::open(&client).unwrap();
    assert_eq!(folder.live_users(), images.len());
    let mut args = d.client_args("identify", &client);
    args.extend(s(&[
        "--image",
        images[2].to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--json",
    ]));
    let o = d.run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let answer: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_exact_full(&answer, images.len());
}
