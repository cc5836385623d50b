//! Gallery updates (users added and removed without re-enrolment) and partial answers
//! when a cluster fails: every score that comes back is the exact plaintext integer
//! score, a removed user's template is gone from the servers, and a failed cluster is
//! either an error naming it or an answer that says which users it leaves out.

use protocol::messages::{Layout, RequestId};
use protocol::roles::{Client, FailurePolicy, MainServer};
use protocol::transport::{InProcess, Transport};
use protocol::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// In-process clusters, one of which can be made to fail (usize::MAX = none).
struct Breakable {
    inner: InProcess,
    broken: Arc<AtomicUsize>,
}

impl Transport for Breakable {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        if self.broken.load(Ordering::SeqCst) == cluster {
            return Err(ProtocolError::Input(format!("cluster {cluster} is down")));
        }
        self.inner.call(cluster, request)
    }
}

struct Deployment {
    client: Client,
    main: MainServer,
    broken: Arc<AtomicUsize>,
    set: synthetic::SyntheticSet,
}

fn deploy(layout: Layout, preset: &str, users: usize, clusters: usize) -> Deployment {
    let set = synthetic::generate(users + 500, 4, 16, 0.2, 9);
    let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
    let model = QuantizedModel::new(&set.model, q, 8).unwrap();
    assert!(model.weights.iter().any(|&w| w > 0) && model.weights.iter().any(|&w| w < 0));
    let params = ParamSpec::preset(preset).unwrap().build().unwrap();
    let engine = ColumnarEngine::Cpu.resolve();
    let broken = Arc::new(AtomicUsize::new(usize::MAX));
    let transport = Breakable {
        inner: InProcess::with_engine(&params, clusters, &engine).unwrap(),
        broken: broken.clone(),
    };
    let client = Client::new(params.clone(), layout, model).unwrap();
    let mut main = MainServer::new(params, Box::new(transport));
    main.setup(&client.setup_message().unwrap().0).unwrap();
    main.enrol(&client.enrolment_message(&set.gallery[..users]).unwrap())
        .unwrap();
    Deployment {
        client,
        main,
        broken,
        set,
    }
}

/// Decrypted scores of one probe (None where the answer leaves a user out).
fn identify(d: &Deployment, probe: &[f32], policy: FailurePolicy) -> Result<Vec<Option<i64>>> {
    let c = &d.client;
    let query = c.query_message(&c.encrypt_query(probe)?);
    let (results, _, coverage) = d.main.query_with(&query, policy)?;
    let decoded = c.decrypt(&c.open_results(&results)?)?;
    let missing: BTreeSet<usize> = coverage.missing_units.iter().copied().collect();
    c.scores_partial(&decoded, d.main.users(), &missing)
}

/// The plaintext integer scores of a probe against the gallery as the servers hold it
/// (removed users: a template of zeros).
fn expected(
    d: &Deployment,
    gallery: &[Vec<f32>],
    removed: &BTreeSet<usize>,
    probe: &[f32],
) -> Vec<i64> {
    let m = d.client.model();
    let q = m.quantize(probe);
    gallery
        .iter()
        .enumerate()
        .map(|(u, t)| {
            let r = if removed.contains(&u) {
                vec![0; m.features()]
            } else {
                m.quantize(t)
            };
            m.score(&q, &r)
        })
        .collect()
}

fn exercise(layout: Layout, preset: &str, users: usize, add: usize) {
    let mut d = deploy(layout, preset, users, 3);
    let probe = d.set.probes[0].template.clone();
    let mut gallery = d.set.gallery[..users].to_vec();
    let none = BTreeSet::new();
    let exact = |d: &Deployment, g: &[Vec<f32>], removed: &BTreeSet<usize>| {
        let got = identify(d, &probe, FailurePolicy::Strict).unwrap();
        let want = expected(d, g, removed, &probe);
        assert_eq!(got.len(), want.len());
        for (u, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(*g, Some(*w), "user {u}");
        }
    };
    exact(&d, &gallery, &none);

    // Add users at the end and remove some old ones, in one update.
    gallery.extend(d.set.gallery[users..users + add].iter().cloned());
    let removed: BTreeSet<usize> = [1, users / 2, users - 1].into_iter().collect();
    let changed: BTreeSet<usize> = (users..users + add)
        .chain(removed.iter().copied())
        .collect();
    let request = RequestId::random();
    let message = d
        .client
        .update_message(&request, &gallery, &removed, &changed)
        .unwrap();
    let summary = d.main.update(&message).unwrap();
    assert_eq!(summary.users, users + add);
    assert_eq!(d.main.users(), users + add);
    exact(&d, &gallery, &removed);
    // A removed user's own print no longer finds its old template: its slot scores
    // exactly what a template of zeros scores.
    let m = d.client.model();
    let own = identify(&d, &gallery[1], FailurePolicy::Strict).unwrap();
    let zero = m.score(&m.quantize(&gallery[1]), &vec![0; m.features()]);
    assert_eq!(own[1], Some(zero));
    assert_ne!(
        own[1],
        Some(m.score(&m.quantize(&gallery[1]), &m.quantize(&gallery[1])))
    );

    // Applying the same update again changes nothing.
    d.main.update(&message).unwrap();
    exact(&d, &gallery, &removed);

    // A cluster down: strict fails naming it; partial leaves out its units only.
    // The cluster whose loss leaves out the fewest units (a columnar group spread over
    // every cluster is lost with any of them).
    let lost_with = |c: usize| -> BTreeSet<usize> {
        d.main
            .placement()
            .iter()
            .filter(|(_, k)| *k == c)
            .map(|(u, _)| u.group)
            .collect()
    };
    let victim = (0..3).min_by_key(|&c| lost_with(c).len()).unwrap();
    d.broken.store(victim, Ordering::SeqCst);
    let e = identify(&d, &probe, FailurePolicy::Strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("cluster {victim}")), "{e}");
    let got = identify(&d, &probe, FailurePolicy::Partial).unwrap();
    let want = expected(&d, &gallery, &removed, &probe);
    let lost = lost_with(victim);
    assert!(!lost.is_empty());
    let mut missing = 0;
    for (u, (g, w)) in got.iter().zip(&want).enumerate() {
        if lost.contains(&d.client.unit_of_user(u)) {
            assert_eq!(*g, None, "user {u} of a lost unit");
            missing += 1;
        } else {
            assert_eq!(*g, Some(*w), "user {u}");
        }
    }
    assert!(missing > 0 && missing < want.len());
    d.broken.store(usize::MAX, Ordering::SeqCst);
    exact(&d, &gallery, &removed);
}

#[test]
fn columnar_updates_and_partial_answers_are_exact() {
    // 8,190 + 10 users cross the first group's end, so the update adds a new group.
    exercise(Layout::Columnar, "col-8192", 8190, 10);
}

#[test]
fn blindtouch_updates_and_partial_answers_are_exact() {
    // 512 users per ciphertext: 1,100 users on 3 ciphertexts, the update opens a 4th.
    exercise(
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        "bt-8192",
        1100,
        500,
    );
}

#[test]
fn updates_that_do_not_fit_the_gallery_are_refused() {
    let mut d = deploy(Layout::Columnar, "col-8192", 50, 2);
    let gallery = d.set.gallery[..50].to_vec();
    let none = BTreeSet::new();
    // Fewer users than enrolled.
    let msg = d
        .client
        .update_message(&RequestId::random(), &gallery[..40], &none, &[3].into())
        .unwrap();
    let e = d.main.update(&msg).unwrap_err().to_string();
    assert!(e.contains("fewer than the 50 enrolled"), "{e}");
    // A user outside the gallery.
    let e = d
        .client
        .update_message(&RequestId::random(), &gallery, &none, &[50].into())
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the gallery"), "{e}");
    // Another client's update.
    let other = Client::new(
        d.client.params().clone(),
        Layout::Columnar,
        d.client.model().clone(),
    )
    .unwrap();
    let msg = other
        .update_message(&RequestId::random(), &gallery, &none, &[3].into())
        .unwrap();
    assert!(d.main.update(&msg).is_err());
    // Before any enrolment.
    let mut fresh = MainServer::new(
        d.client.params().clone(),
        Box::new(InProcess::new(d.client.params(), 2).unwrap()),
    );
    fresh.setup(&d.client.setup_message().unwrap().0).unwrap();
    let msg = d
        .client
        .update_message(&RequestId::random(), &gallery, &none, &[3].into())
        .unwrap();
    assert!(fresh
        .update(&msg)
        .unwrap_err()
        .to_string()
        .contains("enrol before updating"));
    // Nothing above changed the gallery.
    assert_eq!(d.main.users(), 50);
}

/// A setup that one cluster missed (down) can be retried: the clusters that took it
/// acknowledge the owner's setup again without replacing anything, the missing one binds,
/// and the deployment works — while another client's setup is still refused.
#[test]
fn a_setup_some_clusters_missed_can_be_retried() {
    let set = synthetic::generate(40, 2, 16, 0.2, 3);
    let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
    let model = QuantizedModel::new(&set.model, q, 8).unwrap();
    let params = ParamSpec::preset("col-8192").unwrap().build().unwrap();
    let broken = Arc::new(AtomicUsize::new(2));
    let transport = Breakable {
        inner: InProcess::with_engine(&params, 3, &ColumnarEngine::Cpu.resolve()).unwrap(),
        broken: broken.clone(),
    };
    let client = Client::new(params.clone(), Layout::Columnar, model.clone()).unwrap();
    let mut main = MainServer::new(params.clone(), Box::new(transport));
    let setup = client.setup_message().unwrap().0.clone();
    let e = main.setup(&setup).unwrap_err().to_string();
    assert!(e.contains("cluster 2"), "{e}");
    assert_eq!(main.deployment_id(), None);
    broken.store(usize::MAX, Ordering::SeqCst);
    main.setup(&setup).unwrap();
    main.enrol(&client.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    let probe = &set.probes[0].template;
    let (results, _) = main
        .query(&client.query_message(&client.encrypt_query(probe).unwrap()))
        .unwrap();
    let decoded = client
        .decrypt(&client.open_results(&results).unwrap())
        .unwrap();
    let (scores, _) = client.decide(&decoded, 40).unwrap();
    assert_eq!(
        scores,
        Reference::new(client.model(), &set.gallery).scores(probe)
    );
    // Another client still cannot take the servers over.
    let other = Client::new(params, Layout::Columnar, model).unwrap();
    assert!(main.setup(&other.setup_message().unwrap().0).is_err());
}

/// In-process clusters, one of which answers queries with garbage.
struct Garbling {
    inner: InProcess,
    liar: usize,
}

impl Transport for Garbling {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        let answer = self.inner.call(cluster, request)?;
        if cluster == self.liar && protocol::wire::peek(request)? == protocol::wire::Artifact::Query
        {
            return Ok(b"not an answer".to_vec());
        }
        Ok(answer)
    }
}

/// A cluster that answers garbage is named (strict) or counted as failed (partial) —
/// its answer is never used.
#[test]
fn a_cluster_answering_garbage_is_named_or_left_out() {
    let set = synthetic::generate(1100, 2, 16, 0.2, 4);
    let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
    let model = QuantizedModel::new(&set.model, q, 8).unwrap();
    let params = ParamSpec::preset("bt-8192").unwrap().build().unwrap();
    let transport = Garbling {
        inner: InProcess::new(&params, 3).unwrap(),
        liar: 1,
    };
    let layout = Layout::BlindTouch {
        encrypted_weights: false,
    };
    let client = Client::new(params.clone(), layout, model).unwrap();
    let mut main = MainServer::new(params, Box::new(transport));
    main.setup(&client.setup_message().unwrap().0).unwrap();
    main.enrol(&client.enrolment_message(&set.gallery).unwrap())
        .unwrap();
    let probe = &set.probes[0].template;
    let query = client.query_message(&client.encrypt_query(probe).unwrap());
    let e = main.query(&query).unwrap_err().to_string();
    assert!(
        e.contains("cluster 1") && e.contains("answer was refused"),
        "{e}"
    );
    let (results, _, coverage) = main.query_with(&query, FailurePolicy::Partial).unwrap();
    assert_eq!(coverage.failed.len(), 1);
    assert_eq!(coverage.failed[0].0, 1);
    let missing: BTreeSet<usize> = coverage.missing_units.iter().copied().collect();
    assert!(!missing.is_empty());
    let decoded = client
        .decrypt(&client.open_results(&results).unwrap())
        .unwrap();
    let got = client.scores_partial(&decoded, 1100, &missing).unwrap();
    let want = Reference::new(client.model(), &set.gallery).scores(probe);
    for (u, (g, w)) in got.iter().zip(&want).enumerate() {
        if missing.contains(&client.unit_of_user(u)) {
            assert_eq!(*g, None);
        } else {
            assert_eq!(*g, Some(*w), "user {u}");
        }
    }
}

/// A cluster whose columnar answer is well sealed but holds a result ciphertext with an
/// unreduced coefficient (what a bit-packed word can encode and fhe.rs's decoder does
/// not check).
struct Unreduced {
    inner: InProcess,
    params: Params,
    liar: usize,
}

impl Transport for Unreduced {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        use prost::Message;
        use protocol::messages::Ciphertexts;
        use protocol::rq_wire::RqWire;
        use protocol::wire::{Artifact, Sealer};
        let answer = self.inner.call(cluster, request)?;
        if cluster != self.liar || protocol::wire::peek(request)? != Artifact::Query {
            return Ok(answer);
        }
        let id = protocol::wire::deployment(&answer)?;
        let (nanos, items) =
            Ciphertexts::decode_serialized(&answer, Artifact::ClusterResult, &self.params)?;
        let mut items: Vec<(usize, Vec<u8>)> =
            items.into_iter().map(|(i, b)| (i, b.to_vec())).collect();
        let mut ct = fhe::proto::bfv::Ciphertext::decode(items[0].1.as_slice()).unwrap();
        let mut rq = RqWire::decode(ct.c[1].as_slice()).unwrap();
        rq.coefficients[..8].fill(0xFF);
        ct.c[1] = rq.encode_to_vec();
        items[0].1 = ct.encode_to_vec();
        Ok(Ciphertexts::encode_serialized(
            Artifact::ClusterResult,
            &self.params,
            Sealer::Server(id),
            nanos,
            &items,
        ))
    }
}

/// columnar: the main server passes each group's result on as its cluster serialized it,
/// but checks it first — an unreduced word is that cluster's failure (named, or its units
/// left out), whether its groups are whole on it or split across clusters; every score
/// that does come back is exact.
#[test]
fn a_columnar_cluster_answering_unreduced_words_is_named_or_left_out() {
    // 1,100 users: one group split across the three clusters (partial sums added by the
    // main server); 9,000: three groups, each whole on one cluster (passed through).
    for users in [1100, 9000] {
        let set = synthetic::generate(users, 2, 16, 0.2, 5);
        let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
        let model = QuantizedModel::new(&set.model, q, 8).unwrap();
        let params = ParamSpec::preset("col-4096").unwrap().build().unwrap();
        let transport = Unreduced {
            inner: InProcess::with_engine(&params, 3, &ColumnarEngine::Cpu.resolve()).unwrap(),
            params: params.clone(),
            liar: 1,
        };
        let client = Client::new(params.clone(), Layout::Columnar, model).unwrap();
        let mut main = MainServer::new(params, Box::new(transport));
        main.setup(&client.setup_message().unwrap().0).unwrap();
        main.enrol(&client.enrolment_message(&set.gallery).unwrap())
            .unwrap();
        let probe = &set.probes[0].template;
        let query = client.query_message(&client.encrypt_query(probe).unwrap());
        let e = main.query(&query).unwrap_err().to_string();
        assert!(
            e.contains("cluster 1") && e.contains("not reduced"),
            "{users} users: {e}"
        );
        let (results, _, coverage) = main.query_with(&query, FailurePolicy::Partial).unwrap();
        assert_eq!(coverage.failed.len(), 1);
        let missing: BTreeSet<usize> = coverage.missing_units.iter().copied().collect();
        assert!(!missing.is_empty());
        let decoded = client
            .decrypt(&client.open_results(&results).unwrap())
            .unwrap();
        let got = client.scores_partial(&decoded, users, &missing).unwrap();
        let want = Reference::new(client.model(), &set.gallery).scores(probe);
        let mut kept = 0;
        for (u, (g, w)) in got.iter().zip(&want).enumerate() {
            if missing.contains(&client.unit_of_user(u)) {
                assert_eq!(*g, None);
            } else {
                assert_eq!(*g, Some(*w), "user {u}");
                kept += 1;
            }
        }
        // Split: the only group is left out; whole groups: the other clusters' stay.
        assert_eq!(kept > 0, users > 4096, "{users} users");
    }
}
