//! Bad input at every role boundary is a clear error, never a panic.

use protocol::messages::{Ciphertexts, Gallery, Layout, UnitId};
use protocol::roles::{Client, ClusterServer, MainServer};
use protocol::transport::InProcess;
use protocol::wire::{self, Artifact, Sealer, Writer};
use protocol::*;

fn model() -> (synthetic::SyntheticSet, QuantizedModel) {
    let set = synthetic::generate(600, 2, 16, 0.2, 4);
    let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
    let m = QuantizedModel::new(&set.model, q, 8).unwrap();
    (set, m)
}

fn params(name: &str) -> Params {
    ParamSpec::preset(name).unwrap().build().unwrap()
}

fn main_server(preset: &str, clusters: usize) -> MainServer {
    let p = params(preset);
    let transport = InProcess::new(&p, clusters).unwrap();
    MainServer::new(p, Box::new(transport))
}

fn text<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A deployed columnar main server with the gallery enrolled, and its client.
fn columnar_deployment() -> (Client, MainServer, synthetic::SyntheticSet) {
    let (set, m) = model();
    let client = Client::new(params("col-8192"), Layout::Columnar, m).unwrap();
    let mut main = main_server("col-8192", 2);
    main.setup(&client.setup_message().unwrap().0).unwrap();
    main.enrol(&client.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    (client, main, set)
}

#[test]
fn ciphertexts_from_another_parameter_set_are_refused() {
    let (set, m) = model();
    // Same layout and model, other parameters (other t): every artifact is foreign.
    let spec = ParamSpec::new("other-t", 8192, &[55, 55], PlaintextModulus::Bits(31));
    let foreign = Client::new(spec.build().unwrap(), Layout::Columnar, m).unwrap();
    let (_, mut main, _) = columnar_deployment();

    let msg = text(main.setup(&foreign.setup_message().unwrap().0));
    assert!(msg.contains("another parameter set"), "{msg}");
    let msg = text(main.enrol(&foreign.enrolment_message(&set.gallery).unwrap()));
    assert!(
        msg.contains("enrolment") && msg.contains("another parameter set"),
        "{msg}"
    );
    let query = foreign.query_message(&foreign.encrypt_query(&set.probes[0].template).unwrap());
    let msg = text(main.query(&query));
    assert!(
        msg.contains("query") && msg.contains("another parameter set"),
        "{msg}"
    );

    // Another degree altogether.
    let big = Client::new(params("col-16384"), Layout::Columnar, model().1).unwrap();
    let query = big.query_message(&big.encrypt_query(&set.probes[0].template).unwrap());
    assert!(text(main.query(&query)).contains("another parameter set"));
}

#[test]
fn truncated_and_corrupted_messages_are_refused() {
    let (client, main, set) = columnar_deployment();
    let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
    assert!(main.query(&query).is_ok());

    for cut in [0, 10, 33, query.len() / 2, query.len() - 1] {
        let msg = text(main.query(&query[..cut]));
        assert!(
            msg.contains("truncated") || msg.contains("bad magic"),
            "cut {cut}: {msg}"
        );
    }
    let mut flipped = query.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(text(main.query(&flipped)).contains("checksum"));

    // Results truncated on the way back to the client.
    let (results, _) = main.query(&query).unwrap();
    let msg = text(client.open_results(&results[..results.len() - 100]));
    assert!(
        msg.contains("results") && msg.contains("truncated"),
        "{msg}"
    );
    // A message of the wrong kind.
    let msg = text(client.open_results(&query));
    assert!(msg.contains("holds a query message"), "{msg}");
}

#[test]
fn well_sealed_garbage_is_refused_without_panicking() {
    let (client, main, _) = columnar_deployment();
    // Valid envelope and checksum around bytes fhe.rs cannot parse.
    let mut w = Writer::new();
    w.u64(0).u64(16);
    for j in 0..16 {
        w.u64(j).bytes(&[0xAB; 300]);
    }
    let sealed = client.sign(Artifact::Query, &w.finish());
    let msg = text(main.query(&sealed));
    assert!(msg.contains("cluster") && msg.contains("query"), "{msg}");

    // A ciphertext count announcing far more items than present.
    let mut w = Writer::new();
    w.u64(0).u64(1 << 40);
    let sealed = client.sign(Artifact::Query, &w.finish());
    assert!(text(main.query(&sealed)).contains("exceeds the limit"));

    // A columnar query with the wrong number of ciphertexts.
    let probe = vec![0.1f32; 16];
    let mut query = client.encrypt_query(&probe).unwrap();
    query.truncate(15);
    let msg = text(main.query(&client.query_message(&query)));
    assert!(msg.contains("one per feature"), "{msg}");
}

#[test]
fn over_full_layouts_and_wrong_shapes_are_refused() {
    let (set, m) = model();
    let bt = Client::new(
        params("bt-8192"),
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        m.clone(),
    )
    .unwrap();
    // A probe or template of the wrong length.
    assert!(text(bt.encrypt_query(&[0.0; 15])).contains("15 values"));
    let mut bad = set.gallery.clone();
    bad[42] = vec![0.0; 17];
    assert!(text(bt.enrolment_message(&bad)).contains("template 42"));

    // An enrolment claiming more users than its ciphertexts can hold (600 users need
    // two blindtouch ciphertexts; one is sent).
    let p = params("bt-8192");
    let mut main = main_server("bt-8192", 2);
    main.setup(&bt.setup_message().unwrap().0).unwrap();
    let honest = bt.enrolment_message(&set.gallery).unwrap();
    let (_, units) = Gallery::decode_raw(&honest, Artifact::Enrolment, &p).unwrap();
    let over_full = Gallery::encode(
        Artifact::Enrolment,
        &p,
        Sealer::Server(0),
        600,
        units[..1].iter().map(|u| (u.id.clone(), u.bytes)),
    );
    let over_full = resign(&bt, Artifact::Enrolment, &over_full);
    let msg = text(main.enrol(&over_full));
    assert!(msg.contains("do not match the layout"), "{msg}");
    // A duplicated unit instead of the second one.
    let duplicated = Gallery::encode(
        Artifact::Enrolment,
        &p,
        Sealer::Server(0),
        600,
        [&units[0], &units[0]].into_iter().map(|u| {
            (
                UnitId {
                    group: 0,
                    feature: 0,
                },
                u.bytes,
            )
        }),
    );
    let duplicated = resign(&bt, Artifact::Enrolment, &duplicated);
    assert!(text(main.enrol(&duplicated)).contains("do not match the layout"));

    // A model whose scores do not fit t.
    let wide = QuantizedModel::new(&set.model, Quantizer::new(16, 1000.0).unwrap(), 16).unwrap();
    let msg = text(Client::new(params("col-8192"), Layout::Columnar, wide));
    assert!(msg.contains("cannot hold scores"), "{msg}");
    // blindtouch needs a power-of-two feature count.
    let mut odd = set.model.clone();
    odd.weights.truncate(12);
    let odd_q = QuantizedModel::new(&odd, m.template, 8).unwrap();
    let msg = text(Client::new(
        params("bt-8192"),
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        odd_q,
    ));
    assert!(msg.contains("power-of-two"), "{msg}");
}

#[test]
fn roles_refuse_work_out_of_order() {
    let (set, m) = model();
    let client = Client::new(params("col-8192"), Layout::Columnar, m).unwrap();
    let main = main_server("col-8192", 1);
    let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
    assert!(text(main.query(&query)).contains("no setup"));

    let cluster = ClusterServer::new(params("col-8192"));
    let msg = text(cluster.handle(&query));
    assert!(msg.contains("query before setup"), "{msg}");
    let results = Ciphertexts::encode(
        Artifact::Results,
        client.params(),
        Sealer::Server(client.deployment()),
        0,
        &[],
    );
    assert!(text(cluster.handle(&results)).contains("accepts setup"));
    assert!(text(cluster.handle(b"hello")).contains("bad magic"));

    // Set up, but nothing enrolled yet.
    let mut main = main_server("col-8192", 1);
    main.setup(&client.setup_message().unwrap().0).unwrap();
    assert!(text(main.query(&query)).contains("no gallery"));
    assert!(text(InProcess::new(client.params(), 0)).contains("at least one cluster"));
}

#[test]
fn matcher_inputs_are_checked() {
    let (set, m) = model();
    let mut matcher =
        build_matcher(&SchemeConfig::new(SchemeKind::Quantized), &set.model, &m).unwrap();
    assert!(text(matcher.identify(&[0.0; 16])).contains("no gallery"));
    assert!(text(matcher.enrol(&[])).contains("empty gallery"));
    matcher.enrol(&set.gallery).unwrap();
    assert!(text(matcher.identify(&[0.0; 3])).contains("3 values"));
    assert!("bogus"
        .parse::<SchemeKind>()
        .unwrap_err()
        .to_string()
        .contains("columnar"));
}

/// Wraps real clusters and corrupts their answers to queries.
struct Misbehaving {
    inner: InProcess,
    params: Params,
    mode: &'static str,
}

impl protocol::transport::Transport for Misbehaving {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        let answer = self.inner.call(cluster, request)?;
        if wire::peek(request)? != Artifact::Query {
            return Ok(answer);
        }
        let (nanos, mut items) =
            Ciphertexts::decode(&answer, Artifact::ClusterResult, &self.params, 2)?;
        match self.mode {
            "duplicate" => items.push(items[0].clone()),
            "drop" => {
                items.pop();
            }
            "panic" => panic!("simulated cluster crash"),
            _ => {}
        }
        Ok(Ciphertexts::encode(
            Artifact::ClusterResult,
            &self.params,
            Sealer::Server(wire::deployment(&answer)?),
            nanos,
            &items,
        ))
    }
}

#[test]
fn misbehaving_clusters_are_errors_at_the_main_server() {
    let (set, m) = model();
    let client = Client::new(
        params("bt-8192"),
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        m,
    )
    .unwrap();
    let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
    for (mode, expected) in [
        ("duplicate", "duplicate result"),
        ("drop", "results for 1 of 2"),
        ("panic", "crashed"),
    ] {
        let p = params("bt-8192");
        let transport = Misbehaving {
            inner: InProcess::new(&p, 1).unwrap(),
            params: p.clone(),
            mode,
        };
        let mut main = MainServer::new(p, Box::new(transport));
        main.setup(&client.setup_message().unwrap().0).unwrap();
        main.enrol(&client.enrolment_message(&set.gallery).unwrap())
            .unwrap();
        let msg = text(main.query(&query));
        assert!(msg.contains(expected), "{mode}: {msg}");
    }
}

/// The same payload, signed by `client` (a hostile client signs what it likes).
fn resign(client: &Client, kind: Artifact, message: &[u8]) -> Vec<u8> {
    edited(message, kind, client, |_| {})
}

/// Re-seals `message` after `edit` changed its payload (what a tamperer who knows the
/// format does: length and checksum stay valid). Messages a client sends are re-signed by
/// `client` — a hostile client can sign anything; server-made ones stay unsigned.
fn edited(
    message: &[u8],
    kind: Artifact,
    client: &Client,
    edit: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let p = client.params();
    let mut payload = wire::open(message, kind, p.fingerprint()).unwrap().to_vec();
    edit(&mut payload);
    match kind {
        Artifact::Setup | Artifact::Enrolment | Artifact::Query => client.sign(kind, &payload),
        _ => wire::seal(
            kind,
            p.fingerprint(),
            wire::deployment(message).unwrap(),
            &payload,
        ),
    }
}

/// Offset of the representation byte of the first serialized polynomial (fhe-math `Rq`:
/// field 1 = representation, field 2 = degree 8192) at or after `from`.
fn representation_byte(payload: &[u8], from: usize) -> usize {
    (from..payload.len() - 5)
        .find(|&i| {
            payload[i] == 0x08
                && (1..=3).contains(&payload[i + 1])
                && payload[i + 2..i + 5] == [0x10, 0x80, 0x40]
        })
        .map(|i| i + 1)
        .expect("a serialized polynomial")
}

#[test]
fn an_edited_polynomial_representation_is_refused_not_a_panic() {
    let (client, main, set) = columnar_deployment();
    let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
    // PowerBasis (1) and NttShoup (3) instead of Ntt (2): fhe-math used to assert
    // "Incompatible representations" in the first subtraction.
    for (value, name) in [(1u8, "PowerBasis"), (3, "NttShoup")] {
        let bad = edited(&query, Artifact::Query, &client, |payload| {
            let at = representation_byte(payload, 0);
            payload[at] = value;
        });
        let msg = text(main.query(&bad));
        assert!(
            msg.contains(&format!("{name} representation")) && msg.contains("query"),
            "{msg}"
        );
        let cluster = ClusterServer::new(params("col-8192"));
        cluster.handle(&client.setup_message().unwrap().0).unwrap();
        assert!(text(cluster.handle(&bad)).contains("representation"));
    }

    // The same on the way back: the client refuses results in another representation.
    let (results, _) = main.query(&query).unwrap();
    let bad = edited(&results, Artifact::Results, &client, |payload| {
        let at = representation_byte(payload, 0);
        payload[at] = 3;
    });
    let msg = text(client.open_results(&bad));
    assert!(msg.contains("NttShoup representation"), "{msg}");
}

#[test]
fn edited_evaluation_keys_are_refused_at_setup() {
    let (_, m) = model();
    let client = Client::new(
        params("bt-8192"),
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        m,
    )
    .unwrap();
    let setup = &client.setup_message().unwrap().0;
    // The first polynomial after the 16 weights belongs to the relinearization key.
    let bad = edited(setup, Artifact::Setup, &client, |payload| {
        let at = representation_byte(payload, 32 + 8 * 20);
        payload[at] = if payload[at] == 1 { 2 } else { 1 };
    });
    let cluster = ClusterServer::new(params("bt-8192"));
    let msg = text(cluster.handle(&bad));
    assert!(msg.contains("evaluation keys"), "{msg}");
    let mut main = main_server("bt-8192", 2);
    let msg = text(main.setup(&bad));
    assert!(
        msg.contains("cluster") && msg.contains("evaluation keys"),
        "{msg}"
    );
    // The untouched setup still works.
    cluster.handle(setup).unwrap();
}

#[test]
fn shard_units_outside_the_layout_are_refused() {
    let (set, m) = model();
    let client = Client::new(params("col-8192"), Layout::Columnar, m).unwrap();
    let p = client.params().clone();
    let honest = client.enrolment_message(&set.gallery).unwrap();
    let (_, units) = Gallery::decode_raw(&honest, Artifact::Enrolment, &p).unwrap();
    for engine in [ColumnarEngine::Fhe, ColumnarEngine::Cpu] {
        let cluster = ClusterServer::with_engine(params("col-8192"), engine.resolve());
        // A shard before any setup.
        let shard = Gallery::encode(
            Artifact::Shard,
            &p,
            Sealer::Server(client.deployment()),
            600,
            units.iter().map(|u| (u.id.clone(), u.bytes)),
        );
        assert!(text(cluster.handle(&shard)).contains("before setup"));
        cluster.handle(&client.setup_message().unwrap().0).unwrap();
        // Feature 16 of a 16-feature model (used to index the query out of bounds).
        let bad = Gallery::encode(
            Artifact::Shard,
            &p,
            Sealer::Server(client.deployment()),
            600,
            [(
                UnitId {
                    group: 0,
                    feature: 16,
                },
                units[0].bytes,
            )]
            .into_iter(),
        );
        let msg = text(cluster.handle(&bad));
        assert!(
            msg.contains("feature 16") && msg.contains("outside the layout"),
            "{msg}"
        );
        // A group beyond what 600 users need, and a repeated unit.
        let far = Gallery::encode(
            Artifact::Shard,
            &p,
            Sealer::Server(client.deployment()),
            600,
            [(
                UnitId {
                    group: 1,
                    feature: 0,
                },
                units[0].bytes,
            )]
            .into_iter(),
        );
        assert!(text(cluster.handle(&far)).contains("outside the layout"));
        let twice = Gallery::encode(
            Artifact::Shard,
            &p,
            Sealer::Server(client.deployment()),
            600,
            [&units[0], &units[0]]
                .into_iter()
                .map(|u| (u.id.clone(), u.bytes)),
        );
        assert!(text(cluster.handle(&twice)).contains("appears twice"));
        // The honest shard is accepted and a query then works.
        cluster.handle(&shard).unwrap();
        let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
        cluster.handle(&query).unwrap();
    }
}

#[test]
fn results_with_unexpected_or_repeated_indexes_are_refused_by_the_client() {
    let (client, main, set) = columnar_deployment();
    let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());
    let (results, _) = main.query(&query).unwrap();
    let opened = client.open_results(&results).unwrap();
    let decoded = client.decrypt(&opened).unwrap();
    assert!(client.decide(&decoded, 600).is_ok());
    let mut repeated = decoded.clone();
    repeated.push(decoded[0].clone());
    assert!(text(client.decide(&repeated, 600)).contains("unexpected or repeated"));
    let mut far = decoded.clone();
    far[0].0 = 7;
    assert!(text(client.decide(&far, 600)).contains("result 7"));
}

#[test]
fn absurd_sizes_are_refused_up_front() {
    let (set, m) = model();
    for clusters in [0, 65, 100_000] {
        let mut config = SchemeConfig::new(SchemeKind::Columnar);
        config.clusters = clusters;
        let msg = text(build_matcher(&config, &set.model, &m));
        assert!(
            msg.contains("clusters must be in 1..=64"),
            "{clusters}: {msg}"
        );
    }
    assert!(text(InProcess::new(&params("col-8192"), 100_000)).contains("clusters"));
    for bits in [0, 1, 17, 65] {
        assert!(text(Quantizer::new(bits, 1.0)).contains("bits"), "{bits}");
        assert!(
            text(Quantizer::calibrate(&[1.0], bits, Calibration::MaxAbs)).contains("bits"),
            "{bits}"
        );
        assert!(text(QuantizedModel::new(&set.model, m.template, bits)).contains("bits"));
    }
    let spec = SyntheticSpec::new(protocol::limits::MAX_USERS + 1, 1, 1);
    assert!(text(Workload::synthetic(&spec)).contains("users"));
}

#[test]
fn messages_of_another_client_are_refused_and_keys_change_only_after_a_reset() {
    let (set, m) = model();
    let a = Client::new(params("col-8192"), Layout::Columnar, m.clone()).unwrap();
    let b = Client::new(params("col-8192"), Layout::Columnar, m).unwrap();
    assert_ne!(a.deployment(), b.deployment());
    let mut main = main_server("col-8192", 2);
    main.setup(&a.setup_message().unwrap().0).unwrap();

    // B's enrolment into A's deployment.
    let msg = text(main.enrol(&b.enrolment_message(&set.gallery).unwrap()));
    assert!(
        msg.contains("belongs to deployment") && msg.contains("enrolment"),
        "{msg}"
    );
    main.enrol(&a.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    // B's query against A's gallery.
    let probe = &set.probes[0].template;
    let msg = text(main.query(&b.query_message(&b.encrypt_query(probe).unwrap())));
    assert!(
        msg.contains("belongs to deployment") && msg.contains("query"),
        "{msg}"
    );
    // A's results are not B's.
    let (results, _) = main
        .query(&a.query_message(&a.encrypt_query(probe).unwrap()))
        .unwrap();
    assert!(text(b.open_results(&results)).contains("belongs to deployment"));
    assert!(a.open_results(&results).is_ok());
    // B cannot silently replace A's keys, nor can A (a key change needs a reset).
    let msg = text(main.setup(&b.setup_message().unwrap().0));
    assert!(msg.contains("explicit reset"), "{msg}");
    let msg = text(main.setup(&a.setup_message().unwrap().0));
    assert!(msg.contains("explicit reset"), "{msg}");
    // Copying A's deployment id is not enough: the owner's signature is checked.
    let p = a.params().clone();
    let b_enrolment = b.enrolment_message(&set.gallery).unwrap();
    let payload = wire::open(&b_enrolment, Artifact::Enrolment, p.fingerprint()).unwrap();
    let relabelled = wire::seal(
        Artifact::Enrolment,
        p.fingerprint(),
        a.deployment(),
        payload,
    );
    let msg = text(main.enrol(&relabelled));
    assert!(
        msg.contains("not signed by this deployment's owner"),
        "{msg}"
    );
    let b_query = b.query_message(&b.encrypt_query(probe).unwrap());
    let payload = wire::open(&b_query, Artifact::Query, p.fingerprint()).unwrap();
    let relabelled = wire::seal(Artifact::Query, p.fingerprint(), a.deployment(), payload);
    assert!(text(main.query(&relabelled)).contains("not signed by this deployment's owner"));
    // A setup that claims A's id with B's key is refused on its own terms.
    let b_setup = &b.setup_message().unwrap().0;
    let payload = wire::open(b_setup, Artifact::Setup, p.fingerprint()).unwrap();
    let forged = wire::seal(Artifact::Setup, p.fingerprint(), a.deployment(), payload);
    let fresh = ClusterServer::new(params("col-8192"));
    let msg = text(fresh.handle(&forged));
    assert!(
        msg.contains("deployment id is not the one its owner key gives"),
        "{msg}"
    );
    let query = a.query_message(&a.encrypt_query(probe).unwrap());
    assert!(main.query(&query).is_ok(), "A's deployment is intact");

    // A reset hands the servers to B, and A's gallery is gone with A's keys.
    main.reset().unwrap();
    assert!(main.deployment_id().is_none());
    main.setup(&b.setup_message().unwrap().0).unwrap();
    assert!(
        text(main.query(&b.query_message(&b.encrypt_query(probe).unwrap()))).contains("no gallery")
    );
    assert!(text(main.query(&query)).contains("belongs to deployment"));

    // A cluster bound to A refuses B's setup and shards directly too.
    let cluster = ClusterServer::new(params("col-8192"));
    cluster.handle(&a.setup_message().unwrap().0).unwrap();
    assert!(text(cluster.handle(&b.setup_message().unwrap().0)).contains("needs a reset"));
    let raw = b.enrolment_message(&set.gallery).unwrap();
    let (users, units) = Gallery::decode_raw(&raw, Artifact::Enrolment, &p).unwrap();
    let shard = Gallery::encode(
        Artifact::Shard,
        &p,
        Sealer::Server(b.deployment()),
        users,
        units.iter().map(|u| (u.id.clone(), u.bytes)),
    );
    assert!(text(cluster.handle(&shard)).contains("belongs to deployment"));
}

/// Refuses the first setup at cluster 1, as a cluster that was down would.
struct FirstSetupFails {
    inner: InProcess,
    failed: std::sync::atomic::AtomicBool,
}

impl protocol::transport::Transport for FirstSetupFails {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        if cluster == 1
            && wire::peek(request)? == Artifact::Setup
            && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(ProtocolError::Input("cluster 1 is down".into()));
        }
        self.inner.call(cluster, request)
    }
}

#[test]
fn a_reset_frees_clusters_that_a_half_failed_setup_left_bound() {
    let (set, m) = model();
    let a = Client::new(params("col-8192"), Layout::Columnar, m.clone()).unwrap();
    let b = Client::new(params("col-8192"), Layout::Columnar, m).unwrap();
    let p = params("col-8192");
    let mut main = MainServer::new(
        p.clone(),
        Box::new(FirstSetupFails {
            inner: InProcess::new(&p, 2).unwrap(),
            failed: false.into(),
        }),
    );
    // Cluster 0 binds to A, cluster 1 is down: the main server binds to nobody.
    assert!(text(main.setup(&a.setup_message().unwrap().0)).contains("cluster 1"));
    assert!(main.deployment_id().is_none());
    // B's setup now fails at cluster 0, still bound to A ...
    assert!(text(main.setup(&b.setup_message().unwrap().0)).contains("needs a reset"));
    // ... until the operator resets, which reaches every cluster.
    main.reset().unwrap();
    main.setup(&b.setup_message().unwrap().0).unwrap();
    main.enrol(&b.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    let query = b.query_message(&b.encrypt_query(&set.probes[0].template).unwrap());
    assert!(main.query(&query).is_ok());
}

/// The extended query form: refused by clusters that evaluate with fhe.rs, by a fused
/// plan over other primes (a client extending with other weights), for an unreduced word,
/// and for blindtouch; each error says which.
#[test]
fn extended_queries_are_refused_where_they_cannot_be_evaluated() {
    let (set, m) = model();
    let probe = &set.probes[0].template;
    // fhe.rs engine (columnar_deployment's clusters use the default engine).
    let (client, main, _) = columnar_deployment();
    let extended = client.query_message(&client.encrypt_query_extended(probe).unwrap());
    let msg = text(main.query(&extended));
    assert!(msg.contains("needs a fused engine"), "{msg}");

    // A fused deployment.
    let p = params("col-8192");
    let engine = ColumnarEngine::Cpu.resolve();
    let mut fused = MainServer::new(
        p.clone(),
        Box::new(InProcess::with_engine(&p, 2, &engine).unwrap()),
    );
    fused.setup(&client.setup_message().unwrap().0).unwrap();
    fused
        .enrol(&client.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    assert!(fused.query(&extended).is_ok());

    // Extended for another plan: the same client's key, weights of another size (a
    // different extension basis) — rebuilt message, re-signed by the client.
    let query = client.encrypt_query_extended(probe).unwrap();
    let mut other = query.extended.clone().unwrap();
    other.primes.push(other.primes[other.primes.len() - 1]);
    let foreign = protocol::messages::EncryptedQuery {
        items: Vec::new(),
        extended: Some(other),
    };
    let msg = text(fused.query(&client.query_message(&foreign)));
    assert!(msg.contains("this server's fused plan is over"), "{msg}");

    // A word not reduced modulo its prime.
    let mut bad = query.extended.clone().unwrap();
    bad.words[5] = bad.primes[0];
    let unreduced = protocol::messages::EncryptedQuery {
        items: Vec::new(),
        extended: Some(bad),
    };
    let msg = text(fused.query(&client.query_message(&unreduced)));
    assert!(msg.contains("word 5 is not reduced"), "{msg}");

    // Blindtouch has no extended form.
    let bt = Client::new(
        params("bt-8192"),
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        m,
    )
    .unwrap();
    assert!(text(bt.encrypt_query_extended(probe)).contains("columnar"));
}
