//! A seeded mutation fuzzer for every message kind the roles exchange.
//!
//! Each target takes one real, honestly produced message (setup, enrolment, shard, query,
//! cluster result, results; for both layouts), mutates its payload — bit flips, bytes and
//! 64-bit words set to boundary values, truncation, insertion, deletion, duplication,
//! with half of the mutations aimed at the structure: our length-prefixed framing and the
//! protobuf fields of every fhe.rs ciphertext, key and polynomial inside — and **re-seals
//! it with a recomputed length and checksum**, so the mutations reach the decoders and
//! the arithmetic behind them. The mutated bytes go to the role that receives that kind,
//! and no panic may escape it. A panic inside a cluster server counts as escaped even
//! when the main server turns its thread's death into an error (a real cluster process
//! would be dead).
//!
//! Shared by `tests/fuzz_roles.rs` (a few thousand mutations in CI) and
//! `examples/fuzz_roles.rs` (`--iters N` per target, for the long runs).
//!
//! Parameters are small (N = 1024, insecure and allowed) so that a mutation costs
//! milliseconds: the byte formats and code paths are the same at every degree.

#![allow(dead_code)]

use protocol::messages::{Gallery, Layout};
use protocol::roles::{Client, ClusterServer, MainServer};
use protocol::transport::{InProcess, Transport};
use protocol::wire::{self, Artifact, Sealer};
use protocol::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// Panics seen by the process-wide hook (caught or not).
static PANICS: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

/// Installs a silent panic hook that counts panics (fhe.rs decoding panics that the
/// decoders catch would otherwise print thousands of backtraces).
pub fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|_| {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }));
    });
}

/// The parameter set every fuzz deployment uses.
pub fn fuzz_params() -> Params {
    let mut spec = ParamSpec::new("fuzz-1024", 1024, &[40, 40], PlaintextModulus::Bits(30));
    spec.allow_insecure = true;
    spec.build().expect("fuzz parameters")
}

/// A 4-feature head with weights of both signs.
fn model() -> (Workload, QuantizedModel) {
    let head = MatchModel {
        weights: vec![-1.0, 0.5, -0.25, 0.75],
        bias: 0.5,
        threshold: 0.5,
    };
    let mut spec = SyntheticSpec::new(1100, 2, 5);
    spec.features = 4;
    let w = Workload::synthetic_with_head(&spec, &head).expect("workload");
    let q = w.quantized.clone();
    (w, q)
}

/// A deployment of one layout and its honest messages.
pub struct Deployment {
    pub name: &'static str,
    pub layout: Layout,
    pub engine: ColumnarEngine,
    pub client: Client,
    pub workload: Workload,
    pub setup: Vec<u8>,
    pub enrolment: Vec<u8>,
    pub shard: Vec<u8>,
    pub query: Vec<u8>,
    pub cluster_result: Vec<u8>,
    pub results: Vec<u8>,
    pub reset: Vec<u8>,
    /// A gallery update (user 3 removed) and the shard update a cluster receives for it.
    pub update: Vec<u8>,
    pub shard_update: Vec<u8>,
    /// The query in the extended form (columnar; for blindtouch a columnar client's, which
    /// its clusters must refuse).
    pub query_extended: Vec<u8>,
    /// A main server with setup and gallery done (for enrolment and query targets).
    pub main: MainServer,
    /// A cluster server with setup done (for shard targets).
    pub cluster: ClusterServer,
}

fn transport(params: &Params, engine: ColumnarEngine) -> InProcess {
    InProcess::with_engine(params, 2, &engine.resolve()).expect("transport")
}

fn one_cluster(params: &Params, engine: ColumnarEngine) -> InProcess {
    InProcess::with_engine(params, 1, &engine.resolve()).expect("transport")
}

impl Deployment {
    /// A deployment of `layout` whose clusters evaluate `columnar` on `engine`.
    pub fn new(name: &'static str, layout: Layout, engine: ColumnarEngine) -> Self {
        let (workload, quantized) = model();
        let params = fuzz_params();
        let client = Client::new(params.clone(), layout, quantized).expect("client");
        let setup = client.setup_message().expect("setup").0.clone();
        let enrolment = client
            .enrolment_message(&workload.gallery)
            .expect("enrolment");
        let mut main = MainServer::new(params.clone(), Box::new(transport(&params, engine)));
        main.setup(&setup).expect("honest setup");
        main.enrol(&enrolment).expect("honest enrolment");
        let query = client.query_message(
            &client
                .encrypt_query(&workload.probes[0].template)
                .expect("query"),
        );
        let (results, _) = main.query(&query).expect("honest query");
        let query_extended = match layout {
            Layout::Columnar => {
                let extended = client
                    .encrypt_query_extended(&workload.probes[0].template)
                    .expect("extended query");
                client.query_message(&extended)
            }
            Layout::BlindTouch { .. } => {
                let columnar =
                    Client::new(params.clone(), Layout::Columnar, workload.quantized.clone())
                        .expect("columnar client");
                let extended = columnar
                    .encrypt_query_extended(&workload.probes[0].template)
                    .expect("extended query");
                columnar.query_message(&extended)
            }
        };
        // A shard and a cluster result as the main server would send and receive them.
        let (users, units) =
            Gallery::decode_raw(&enrolment, Artifact::Enrolment, &params).expect("raw");
        let shard = Gallery::encode(
            Artifact::Shard,
            &params,
            Sealer::Server(client.deployment()),
            users,
            units.iter().map(|u| (u.id.clone(), u.bytes)),
        );
        let cluster = ClusterServer::with_engine(params.clone(), engine.resolve());
        cluster.handle(&setup).expect("cluster setup");
        cluster.handle(&shard).expect("cluster shard");
        let cluster_result = cluster.handle(&query).expect("cluster result");
        let cluster = ClusterServer::with_engine(params.clone(), engine.resolve());
        cluster.handle(&setup).expect("cluster setup");
        let reset = protocol::messages::Reset::encode(&params, client.deployment());
        let request = protocol::messages::RequestId([7; 16]);
        let removed: std::collections::BTreeSet<usize> = [3].into();
        let update = client
            .update_message(&request, &workload.gallery, &removed, &removed)
            .expect("update");
        let (_, users, units) =
            Gallery::decode_update_raw(&update, Artifact::Update, &params).expect("raw update");
        let shard_update = Gallery::encode_update(
            Artifact::ShardUpdate,
            &params,
            Sealer::Server(client.deployment()),
            &request,
            users,
            units.iter().map(|u| (u.id.clone(), u.bytes)),
        );
        Self {
            name,
            layout,
            engine,
            client,
            workload,
            setup,
            enrolment,
            shard,
            query,
            query_extended,
            cluster_result,
            results,
            reset,
            update,
            shard_update,
            main,
            cluster,
        }
    }
}

/// Every configuration the fuzzer attacks: both layouts, Blind-Touch's encrypted weights
/// (ciphertext × ciphertext factors), and both columnar engines.
pub fn deployments() -> Vec<Deployment> {
    vec![
        Deployment::new(
            "columnar (fused cpu)",
            Layout::Columnar,
            ColumnarEngine::Cpu,
        ),
        Deployment::new("columnar (fhe.rs)", Layout::Columnar, ColumnarEngine::Fhe),
        Deployment::new(
            "blindtouch",
            Layout::BlindTouch {
                encrypted_weights: false,
            },
            ColumnarEngine::Fhe,
        ),
        Deployment::new(
            "blindtouch (enc. weights)",
            Layout::BlindTouch {
                encrypted_weights: true,
            },
            ColumnarEngine::Fhe,
        ),
    ]
}

/// A transport whose clusters answer every query with one fixed (mutated) message.
struct Replay {
    inner: InProcess,
    answer: Arc<Mutex<Vec<u8>>>,
}

impl Transport for Replay {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        if wire::peek(request)? == Artifact::Query && cluster == 0 {
            return Ok(self.answer.lock().expect("answer").clone());
        }
        self.inner.call(cluster, request)
    }
}

/// What one target's run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub target: String,
    pub iterations: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Panics that escaped a role (must be 0).
    pub escaped: u64,
    /// Panics inside fhe.rs caught by the decoders (or the key self-test) and turned into
    /// errors.
    pub caught_inside: u64,
    pub slowest: Duration,
    pub first_escape: Option<String>,
}

/// Offsets worth aiming at: our u64 framing fields, and every protobuf field tag and value
/// start inside each serialized fhe.rs object.
fn anchors(kind: Artifact, payload: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut blobs = Vec::new();
    let u64_at = |at: usize| -> Option<u64> {
        payload
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    };
    let mut at;
    let blob = |at: &mut usize, out: &mut Vec<usize>, blobs: &mut Vec<(usize, usize)>| {
        out.push(*at);
        if let Some(len) = u64_at(*at) {
            let start = *at + 8;
            let end = start.saturating_add(len as usize).min(payload.len());
            blobs.push((start, end));
            *at = end;
        }
    };
    match kind {
        Artifact::Reset => {}
        Artifact::QueryExtended => {
            // Degree, prime count, the primes, the feature count, then the first words.
            out.extend((0..12).map(|i| i * 8).filter(|&o| o < payload.len()));
        }
        Artifact::Query | Artifact::ClusterResult | Artifact::Results => {
            out.extend([0, 8]);
            at = 16;
            while at + 16 <= payload.len() {
                out.push(at);
                at += 8;
                blob(&mut at, &mut out, &mut blobs);
            }
        }
        Artifact::Enrolment | Artifact::Shard | Artifact::Update | Artifact::ShardUpdate => {
            // Updates carry a 16-byte request id before the same body.
            let base = if matches!(kind, Artifact::Update | Artifact::ShardUpdate) {
                out.push(0);
                16
            } else {
                0
            };
            out.extend([base, base + 8]);
            at = base + 16;
            while at + 24 <= payload.len() {
                out.extend([at, at + 8]);
                at += 16;
                blob(&mut at, &mut out, &mut blobs);
            }
        }
        Artifact::Setup => {
            // owner key (32 bytes), layout, features, weights flag (+ count and weights),
            // then flag/blob pairs.
            out.extend([0, 16, 31, 32, 40, 48]);
            at = 56;
            if u64_at(48) == Some(1) {
                let n = u64_at(56).unwrap_or(0).min(64) as usize;
                out.push(56);
                out.extend((0..n).map(|i| 64 + 8 * i));
                at = 64 + 8 * n;
            }
            while at + 8 <= payload.len() {
                out.push(at);
                let flag = u64_at(at);
                at += 8;
                if flag == Some(1) {
                    blob(&mut at, &mut out, &mut blobs);
                    // Encrypted weights and mask: two blobs after one flag.
                    if at + 8 <= payload.len() && blobs.len() >= 3 {
                        blob(&mut at, &mut out, &mut blobs);
                    }
                }
            }
        }
    }
    for (start, end) in blobs {
        protobuf_fields(payload, start, end, 0, &mut out);
    }
    out.retain(|&a| a < payload.len());
    out.sort_unstable();
    out.dedup();
    out
}

fn varint(buf: &[u8], at: &mut usize, end: usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if *at >= end {
            return None;
        }
        let b = buf[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Records the tag and value offsets of the protobuf message in `buf[start..end]` and of
/// the messages nested in its length-delimited fields (up to depth 3); stops at the
/// first thing that is not protobuf (e.g. packed coefficients).
fn protobuf_fields(
    buf: &[u8],
    start: usize,
    end: usize,
    depth: usize,
    out: &mut Vec<usize>,
) -> bool {
    let mut at = start;
    let mut found = Vec::new();
    while at < end {
        let tag_at = at;
        let Some(tag) = varint(buf, &mut at, end) else {
            return false;
        };
        let (field, wire_type) = (tag >> 3, tag & 7);
        if field == 0 || field > 32 {
            return false;
        }
        found.push(tag_at);
        found.push(at);
        match wire_type {
            0 => {
                if varint(buf, &mut at, end).is_none() {
                    return false;
                }
            }
            2 => {
                let Some(len) = varint(buf, &mut at, end) else {
                    return false;
                };
                let value_end = at.saturating_add(len as usize);
                if value_end > end {
                    return false;
                }
                if depth < 3 && len > 0 {
                    let mut nested = Vec::new();
                    if protobuf_fields(buf, at, value_end, depth + 1, &mut nested) {
                        found.extend(nested);
                    }
                }
                at = value_end;
            }
            _ => return false,
        }
    }
    out.extend(found);
    true
}

const WORDS: [u64; 16] = [
    0,
    1,
    2,
    3,
    4,
    7,
    15,
    16,
    17,
    255,
    1 << 16,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 63,
    u64::MAX,
];
const BYTES: [u8; 10] = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xfe, 0xff, 0x10];

/// One mutated copy of `payload` (1–4 stacked mutations).
fn mutate(payload: &[u8], anchors: &[usize], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut p = payload.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if p.is_empty() {
            p.push(rng.random());
            continue;
        }
        let aimed = !anchors.is_empty() && rng.random_bool(0.5);
        let at = if aimed {
            let a = anchors[rng.random_range(0..anchors.len())];
            (a + rng.random_range(0..3)).min(p.len() - 1)
        } else {
            rng.random_range(0..p.len())
        };
        match rng.random_range(0..8) {
            0 => p[at] ^= 1 << rng.random_range(0..8),
            1 => p[at] = BYTES[rng.random_range(0..BYTES.len())],
            2 | 3 => {
                let w = match rng.random_range(0..3) {
                    0 => WORDS[rng.random_range(0..WORDS.len())],
                    1 => (p.len() as u64)
                        .wrapping_add(rng.random_range(0..3))
                        .wrapping_sub(1),
                    _ => u64::from_le_bytes(
                        p.get(at..at + 8)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or([0; 8]),
                    )
                    .wrapping_add(rng.random_range(0..3))
                    .wrapping_sub(1),
                };
                let end = (at + 8).min(p.len());
                p[at..end].copy_from_slice(&w.to_le_bytes()[..end - at]);
            }
            4 => p.truncate(at),
            5 => {
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                p.splice(at..at, bytes);
            }
            6 => {
                let end = (at + rng.random_range(1..=64)).min(p.len());
                p.drain(at..end);
            }
            _ => {
                let end = (at + rng.random_range(1..=64)).min(p.len());
                let chunk = p[at..end].to_vec();
                let to = rng.random_range(0..=p.len());
                p.splice(to..to, chunk);
            }
        }
    }
    p
}

/// The artifact kinds, in report order.
pub const KINDS: [Artifact; 10] = [
    Artifact::Setup,
    Artifact::Enrolment,
    Artifact::Shard,
    Artifact::Query,
    Artifact::ClusterResult,
    Artifact::Results,
    Artifact::Reset,
    Artifact::Update,
    Artifact::ShardUpdate,
    Artifact::QueryExtended,
];

/// Mutates `kind` messages of `d` `iterations` times and delivers each to its role.
pub fn run(d: &Deployment, kind: Artifact, iterations: u64, seed: u64) -> Report {
    install_hook();
    let params = fuzz_params();
    let honest = match kind {
        Artifact::Setup => &d.setup,
        Artifact::Enrolment => &d.enrolment,
        Artifact::Shard => &d.shard,
        Artifact::Query => &d.query,
        Artifact::ClusterResult => &d.cluster_result,
        Artifact::Results => &d.results,
        Artifact::Reset => &d.reset,
        Artifact::Update => &d.update,
        Artifact::ShardUpdate => &d.shard_update,
        Artifact::QueryExtended => &d.query_extended,
    };
    let payload = wire::open(honest, kind, params.fingerprint())
        .expect("honest message")
        .to_vec();
    let anchors = anchors(kind, &payload);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (kind as u64) << 32);
    let replay_answer = Arc::new(Mutex::new(Vec::new()));
    let mut replay_main = (kind == Artifact::ClusterResult).then(|| {
        let mut main = MainServer::new(
            params.clone(),
            // One cluster: the replayed answer (evaluated on the whole gallery) is then
            // the complete honest answer, so mutations start from an accepted message.
            Box::new(Replay {
                inner: one_cluster(&params, d.engine),
                answer: replay_answer.clone(),
            }),
        );
        main.setup(&d.setup).expect("setup");
        main.enrol(&d.enrolment).expect("enrol");
        main
    });
    let mut setup_main = (kind == Artifact::Setup)
        .then(|| MainServer::new(params.clone(), Box::new(transport(&params, d.engine))));
    let mut enrol_main = (kind == Artifact::Enrolment).then(|| {
        let mut main = MainServer::new(params.clone(), Box::new(transport(&params, d.engine)));
        main.setup(&d.setup).expect("setup");
        main
    });
    // Accepted update mutations change these servers' galleries; later mutations still
    // start from the honest update, which fits any of them.
    let mut update_main = (kind == Artifact::Update).then(|| {
        let mut main = MainServer::new(params.clone(), Box::new(transport(&params, d.engine)));
        main.setup(&d.setup).expect("setup");
        main.enrol(&d.enrolment).expect("enrol");
        main
    });
    let update_cluster = (kind == Artifact::ShardUpdate).then(|| {
        let cluster = ClusterServer::with_engine(params.clone(), d.engine.resolve());
        cluster.handle(&d.setup).expect("setup");
        cluster.handle(&d.shard).expect("shard");
        cluster
    });
    let reset_cluster = (kind == Artifact::Reset).then(|| {
        let cluster = ClusterServer::with_engine(params.clone(), d.engine.resolve());
        cluster.handle(&d.setup).expect("setup");
        cluster
    });
    let users = d.workload.users();
    let mut report = Report {
        target: format!("{} {}", d.name, kind.name()),
        ..Default::default()
    };
    for _ in 0..iterations {
        // What a client sends is re-signed by the client (a hostile client signs what it
        // likes, so mutations reach the decoders behind the signature check); what the
        // servers make is re-sealed unsigned.
        let body = mutate(&payload, &anchors, &mut rng);
        // One mutation in ten edits the envelope's header instead (kind, version,
        // fingerprint, deployment id, length, checksum, signature) without re-sealing.
        let header_only = rng.random_bool(0.1);
        let mutated = if header_only {
            let mut m = honest.clone();
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..wire::HEADER_LEN.min(m.len()));
                m[at] ^= 1 << rng.random_range(0..8);
            }
            m
        } else {
            match kind {
                Artifact::Setup
                | Artifact::Enrolment
                | Artifact::Query
                | Artifact::QueryExtended
                | Artifact::Update => d.client.sign(kind, &body),
                _ => wire::seal(
                    kind,
                    params.fingerprint(),
                    wire::deployment(honest).expect("header"),
                    &body,
                ),
            }
        };
        let panics_before = PANICS.load(Ordering::SeqCst);
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<(), String> {
            let r: Result<()> = match kind {
                Artifact::Setup => {
                    // One main server for the run; an accepted setup binds it, and the
                    // operator's reset frees it for the next mutation.
                    let main = setup_main.as_mut().expect("setup main");
                    let r = main.setup(&mutated);
                    if r.is_ok() {
                        main.reset().map_err(|e| e.to_string())?;
                    }
                    r
                }
                Artifact::Enrolment => {
                    // One main server for the whole run: each accepted enrolment replaces
                    // the last, as in a long-lived deployment.
                    let main = enrol_main.as_mut().expect("enrolment main");
                    main.enrol(&mutated).map(|_| ())
                }
                Artifact::Shard => d.cluster.handle(&mutated).map(|_| ()),
                Artifact::Update => update_main
                    .as_mut()
                    .expect("update main")
                    .update(&mutated)
                    .map(|_| ()),
                Artifact::ShardUpdate => update_cluster
                    .as_ref()
                    .expect("update cluster")
                    .handle(&mutated)
                    .map(|_| ()),
                Artifact::Query | Artifact::QueryExtended => d.main.query(&mutated).map(|_| ()),
                Artifact::ClusterResult => {
                    *replay_answer.lock().expect("answer") = mutated.clone();
                    let main = replay_main.as_mut().expect("replay main");
                    main.query(&d.query).map(|_| ())
                }
                Artifact::Results => d
                    .client
                    .open_results(&mutated)
                    .and_then(|r| d.client.decrypt(&r))
                    .and_then(|dec| d.client.decide(&dec, users))
                    .map(|_| ()),
                Artifact::Reset => {
                    let cluster = reset_cluster.as_ref().expect("reset cluster");
                    let r = cluster.handle(&mutated).map(|_| ());
                    if r.is_ok() {
                        // Reset happened: bind the cluster again for the next mutation.
                        cluster.handle(&d.setup).map_err(|e| e.to_string())?;
                    }
                    r
                }
            };
            r.map_err(|e| e.to_string())
        }));
        let elapsed = start.elapsed();
        report.slowest = report.slowest.max(elapsed);
        report.iterations += 1;
        let panics = PANICS.load(Ordering::SeqCst) - panics_before;
        match outcome {
            Ok(Ok(())) => {
                report.accepted += 1;
                report.caught_inside += panics;
            }
            Ok(Err(e)) if e.contains("crashed") => {
                report.escaped += 1;
                report
                    .first_escape
                    .get_or_insert(format!("cluster panicked: {e}"));
            }
            Ok(Err(_)) => {
                report.refused += 1;
                report.caught_inside += panics;
            }
            Err(p) => {
                report.escaped += 1;
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                report.first_escape.get_or_insert(what);
            }
        }
    }
    report
}

/// One line per report, for humans and for the closing note.
pub fn render(reports: &[Report]) -> String {
    let mut s = format!(
        "{:<44} {:>10} {:>9} {:>9} {:>8} {:>14} {:>10}\n",
        "target", "mutations", "accepted", "refused", "escaped", "caught inside", "slowest"
    );
    for r in reports {
        s.push_str(&format!(
            "{:<44} {:>10} {:>9} {:>9} {:>8} {:>14} {:>8.1}ms\n",
            r.target,
            r.iterations,
            r.accepted,
            r.refused,
            r.escaped,
            r.caught_inside,
            r.slowest.as_secs_f64() * 1e3
        ));
        if let Some(e) = &r.first_escape {
            s.push_str(&format!("  first escaped panic: {e}\n"));
        }
    }
    s
}
