//! Negative databases: the K-hidden invariants, the match-probability formula (exhaustive
//! and Monte-Carlo), the distance estimator, binarisation and the byte format.

use protect::ndb::{
    binarise, estimate_distance, expected_match_probability, Binariser, BitVec, Estimator, Ndb,
    NdbParams,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_bits(rng: &mut ChaCha8Rng, m: usize) -> BitVec {
    let bits: Vec<bool> = (0..m).map(|_| rng.random()).collect();
    BitVec::from_bools(&bits)
}

/// x with exactly d distinct random bits flipped.
fn at_distance(rng: &mut ChaCha8Rng, x: &BitVec, d: usize) -> BitVec {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    for t in 0..d {
        let j = rng.random_range(t..idx.len());
        idx.swap(t, j);
    }
    let mut y = x.clone();
    for &i in &idx[..d] {
        y.flip(i);
    }
    assert_eq!(x.hamming(&y), Some(d));
    y
}

fn params(k: usize, r: usize, p: &[f64]) -> NdbParams {
    NdbParams {
        k,
        r,
        p: p.to_vec(),
    }
}

#[test]
fn no_entry_ever_matches_x() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sets = [
        params(3, 8, &[0.6, 0.3, 0.1]),
        params(3, 4, &[1.0, 0.0, 0.0]),
        params(4, 3, &[0.0, 0.0, 0.0, 1.0]),
        params(1, 5, &[1.0]),
        params(7, 2, &[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]),
    ];
    for (s, p) in sets.iter().enumerate() {
        for trial in 0..100 {
            let m = [8, 33, 64, 100][trial % 4];
            let x = random_bits(&mut rng, m);
            let ndb = Ndb::generate(&x, p, &mut rng).unwrap();
            assert_eq!(ndb.len(), p.r * m, "set {s}");
            assert_eq!(ndb.matches(&x).unwrap(), 0, "set {s}, trial {trial}");
            for e in 0..ndb.len() {
                let (pos, value) = ndb.entry(e).unwrap();
                assert_eq!(pos.len(), p.k);
                assert!(pos.windows(2).all(|w| w[0] < w[1]), "increasing, distinct");
                assert!(pos.iter().all(|&q| (q as usize) < m));
                let differing = pos
                    .iter()
                    .enumerate()
                    .filter(|&(t, &q)| x.get(q as usize) != (value >> t & 1 == 1))
                    .count();
                assert!(differing >= 1 && p.p[differing - 1] > 0.0);
            }
        }
    }
}

#[test]
fn differing_counts_follow_p() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let p = params(4, 50, &[0.1, 0.2, 0.3, 0.4]);
    let x = random_bits(&mut rng, 200);
    let ndb = Ndb::generate(&x, &p, &mut rng).unwrap();
    let mut counts = [0usize; 4];
    let mut position_hits = vec![0usize; 200];
    for e in 0..ndb.len() {
        let (pos, value) = ndb.entry(e).unwrap();
        let differing = pos
            .iter()
            .enumerate()
            .filter(|&(t, &q)| x.get(q as usize) != (value >> t & 1 == 1))
            .count();
        counts[differing - 1] += 1;
        for &q in pos {
            position_hits[q as usize] += 1;
        }
    }
    let n = ndb.len() as f64;
    for i in 0..4 {
        let sd = (p.p[i] * (1.0 - p.p[i]) / n).sqrt();
        assert!(
            (counts[i] as f64 / n - p.p[i]).abs() < 4.0 * sd,
            "{counts:?}"
        );
    }
    // Positions are uniform: each is specified K·r = 200 times on average.
    let (lo, hi) = (
        position_hits.iter().min().unwrap(),
        position_hits.iter().max().unwrap(),
    );
    assert!(*lo > 140 && *hi < 260, "{lo} {hi}");
}

#[test]
fn balanced_p_hides_each_bit() {
    // With E[i] = K/2 a specified bit equals x's bit half the time: a per-position
    // majority vote recovers x no better than chance.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let p = NdbParams::recommended();
    assert!((p.differing_fraction() - 0.5).abs() < 1e-12);
    let m = 256;
    let x = random_bits(&mut rng, m);
    let ndb = Ndb::generate(&x, &p, &mut rng).unwrap();
    let mut ones = vec![0i32; m];
    for e in 0..ndb.len() {
        let (pos, value) = ndb.entry(e).unwrap();
        for (t, &q) in pos.iter().enumerate() {
            ones[q as usize] += if value >> t & 1 == 1 { 1 } else { -1 };
        }
    }
    let guessed = BitVec::from_bools(&ones.iter().map(|&c| c > 0).collect::<Vec<_>>());
    let d = guessed.hamming(&x).unwrap();
    assert!(
        (96..=160).contains(&d),
        "majority vote got {d} of {m} bits wrong"
    );
    // An unbalanced p (most specified bits flipped) gives x away.
    let leaky = params(3, 8, &[0.1, 0.3, 0.6]);
    let ndb = Ndb::generate(&x, &leaky, &mut rng).unwrap();
    let mut ones = vec![0i32; m];
    for e in 0..ndb.len() {
        let (pos, value) = ndb.entry(e).unwrap();
        for (t, &q) in pos.iter().enumerate() {
            ones[q as usize] += if value >> t & 1 == 1 { 1 } else { -1 };
        }
    }
    let guessed = BitVec::from_bools(&ones.iter().map(|&c| c < 0).collect::<Vec<_>>());
    assert!(guessed.hamming(&x).unwrap() < 20);
}

fn binom(n: usize, k: usize) -> f64 {
    if k > n {
        0.0
    } else {
        (0..k).fold(1.0, |a, j| a * (n - j) as f64 / (j + 1) as f64)
    }
}

#[test]
fn match_probability_formula_by_enumeration() {
    // Enumerate every (specified set S, differing subset I) for small m and K: an entry
    // of type i matches y iff S ∩ D = I. Average over (S, I) uniform, weighted by p_i.
    let (m, k) = (9usize, 4usize);
    let p = [0.1, 0.2, 0.3, 0.4];
    for d in 0..=m {
        let differs = |pos: usize| pos < d; // D = {0..d}
        let mut by_i = [0.0f64; 5];
        let mut total = [0.0f64; 5];
        for s in 0u32..(1 << m) {
            if s.count_ones() as usize != k {
                continue;
            }
            // Every subset I of S.
            let mut sub = s;
            loop {
                let i = sub.count_ones() as usize;
                if i >= 1 {
                    total[i] += 1.0;
                    let matches = (0..m)
                        .filter(|&q| s >> q & 1 == 1)
                        .all(|q| differs(q) == (sub >> q & 1 == 1));
                    if matches {
                        by_i[i] += 1.0;
                    }
                }
                if sub == 0 {
                    break;
                }
                sub = (sub - 1) & s;
            }
        }
        let enumerated: f64 = (1..=k).map(|i| p[i - 1] * by_i[i] / total[i]).sum();
        let formula = expected_match_probability(d, m, k, &p).unwrap();
        let direct: f64 = (1..=k)
            .map(|i| p[i - 1] * binom(d, i) * binom(m - d, k - i) / (binom(m, k) * binom(k, i)))
            .sum();
        assert!(
            (enumerated - formula).abs() < 1e-12,
            "d {d}: {enumerated} vs {formula}"
        );
        assert!((direct - formula).abs() < 1e-12);
    }
    // Boundary values: x itself never matches; its complement matches only i = K entries.
    assert_eq!(expected_match_probability(0, m, k, &p).unwrap(), 0.0);
    assert!((expected_match_probability(m, m, k, &p).unwrap() - 0.4).abs() < 1e-12);
}

#[test]
fn match_probability_agrees_with_simulation() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (m, k) = (48, 3);
    for p in [
        vec![0.6, 0.3, 0.1],
        vec![0.2, 0.3, 0.5],
        vec![0.0, 1.0, 0.0],
    ] {
        let ps = params(k, 400, &p);
        for d in [0, 1, 3, 8, 16, 24, 40, 48] {
            let x = random_bits(&mut rng, m);
            let mut matched = 0usize;
            let mut entries = 0usize;
            for _ in 0..3 {
                let y = at_distance(&mut rng, &x, d);
                let ndb = Ndb::generate(&x, &ps, &mut rng).unwrap();
                matched += ndb.matches(&y).unwrap();
                entries += ndb.len();
            }
            let f = expected_match_probability(d, m, k, &p).unwrap();
            let observed = matched as f64 / entries as f64;
            let sd = (f * (1.0 - f) / entries as f64).sqrt();
            assert!(
                (observed - f).abs() <= 4.5 * sd + 1e-12,
                "p {p:?} d {d}: observed {observed}, formula {f} (sd {sd})"
            );
        }
    }
}

/// Mean estimate, median reported standard error, empirical sd and 2-SE coverage.
fn estimate_trials(
    p: &NdbParams,
    m: usize,
    d: usize,
    trials: usize,
    seed: u64,
) -> (f64, f64, f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let est = Estimator::new(m, p.k, &p.p).unwrap();
    let mut values = Vec::new();
    let mut ses = Vec::new();
    let mut covered = 0;
    for _ in 0..trials {
        let x = random_bits(&mut rng, m);
        let y = at_distance(&mut rng, &x, d);
        let ndb = Ndb::generate(&x, p, &mut rng).unwrap();
        let e = est.estimate(ndb.matches(&y).unwrap(), ndb.len()).unwrap();
        if (e.distance - d as f64).abs() <= 2.0 * e.std_err + 1e-9 {
            covered += 1;
        }
        values.push(e.distance);
        ses.push(e.std_err);
    }
    let n = trials as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    ses.sort_by(f64::total_cmp);
    (mean, ses[trials / 2], sd, covered as f64 / n)
}

#[test]
fn distance_estimate_is_unbiased_within_its_error() {
    let m = 128;
    let cases = [
        // A p with c_i = p_i/C(K,i) non-decreasing: f rises over all of 0..=m.
        (params(3, 8, &[0.2, 0.3, 0.5]), vec![0, 8, 16, 32, 64]),
        // The recommended, balanced p: informative up to m/2.
        (NdbParams::recommended(), vec![0, 8, 16, 32]),
    ];
    for (c, (p, distances)) in cases.iter().enumerate() {
        for &d in distances {
            let trials = 300;
            let (mean, se, sd, coverage) = estimate_trials(p, m, d, trials, 100 + d as u64);
            eprintln!(
                "case {c} d {d}: mean {mean:.3} se {se:.3} sd {sd:.3} coverage {coverage:.3}"
            );
            if d == 0 {
                assert_eq!(mean, 0.0);
                continue;
            }
            // The mean of 300 estimates is within 3 standard errors of the mean of d,
            // and the reported standard error matches the spread of the estimates.
            let se_mean = sd / (trials as f64).sqrt();
            assert!(
                (mean - d as f64).abs() < 3.0 * se_mean + 0.05 * se,
                "case {c} d {d}"
            );
            assert!(
                sd / se > 0.7 && sd / se < 1.4,
                "case {c} d {d}: sd {sd} se {se}"
            );
            assert!(coverage > 0.9, "case {c} d {d}: coverage {coverage}");
        }
    }
}

#[test]
fn estimator_edges() {
    let p = NdbParams::recommended();
    let est = Estimator::new(128, 3, &p.p).unwrap();
    // Balanced p: f rises to m/2 and no further.
    assert_eq!(est.d_max(), 64);
    assert!(est.curve()[128] < est.curve()[64]);
    let top = est.estimate(1024, 1024).unwrap();
    assert!(top.at_limit && top.distance == 64.0);
    let zero = est.estimate(0, 1024).unwrap();
    assert!(zero.distance == 0.0 && zero.std_err > 0.0 && !zero.at_limit);
    // A count exactly on the curve inverts exactly.
    let n = 1_000_000;
    let f20 = est.curve()[20];
    let e = est.estimate((f20 * n as f64).round() as usize, n).unwrap();
    assert!((e.distance - 20.0).abs() < 0.01, "{e:?}");
    let same = estimate_distance((f20 * n as f64).round() as usize, n, 128, 3, &p.p).unwrap();
    assert_eq!(e, same);
    // Beyond m/2 f stays ≥ f(m) = p_K = 0.1 ≈ f(m/4): even the complement of x reads
    // as about m/4, never as close.
    assert!(est.curve()[64..].iter().all(|&f| f >= 0.1 - 1e-12));
    let complement = est.estimate((0.1 * n as f64) as usize, n).unwrap();
    assert!(
        (30.0..33.0).contains(&complement.distance),
        "{complement:?}"
    );
    // A p with c_i non-decreasing rises over the whole range.
    assert_eq!(
        Estimator::new(128, 3, &[0.2, 0.3, 0.5]).unwrap().d_max(),
        128
    );
    assert!(est.estimate(5, 4).is_err());
    assert!(est.estimate(0, 0).is_err());
}

#[test]
fn ndb_estimates_through_its_own_parameters() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = random_bits(&mut rng, 128);
    let ndb = Ndb::generate(&x, &NdbParams::recommended(), &mut rng).unwrap();
    assert_eq!(ndb.estimate_distance(&x).unwrap().distance, 0.0);
    let far = at_distance(&mut rng, &x, 60);
    assert!(ndb.estimate_distance(&far).unwrap().distance > 30.0);
    assert!(ndb.matches(&random_bits(&mut rng, 127)).is_err());
}

#[test]
fn bytes_round_trip_and_hostile_bytes_are_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for (m, p) in [
        (40, NdbParams::recommended()),
        (
            9,
            params(9, 2, &[0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5]),
        ),
        (65_536, params(2, 1, &[0.5, 0.5])),
    ] {
        let x = random_bits(&mut rng, m);
        let ndb = Ndb::generate(&x, &p, &mut rng).unwrap();
        let bytes = ndb.to_bytes();
        assert_eq!(bytes.len(), ndb.byte_len());
        let back = Ndb::from_bytes(&bytes).unwrap();
        assert_eq!(back, ndb);
        assert_eq!(back.matches(&x).unwrap(), 0);
        if m > 100 {
            continue;
        }
        // Every truncation and extension fails.
        for cut in 0..bytes.len() {
            assert!(Ndb::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Ndb::from_bytes(&longer).is_err());
        // Every single-byte change either fails or parses to a valid database.
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff, bytes[i] ^ 0x10] {
                let mut b = bytes.clone();
                b[i] = v;
                if let Ok(parsed) = Ndb::from_bytes(&b) {
                    assert_eq!(parsed.len(), parsed.params().r * parsed.bits());
                    for e in 0..parsed.len() {
                        let (pos, _) = parsed.entry(e).unwrap();
                        assert!(pos.windows(2).all(|w| w[0] < w[1]));
                        assert!(pos.iter().all(|&q| (q as usize) < parsed.bits()));
                    }
                }
            }
        }
    }
    // A header claiming the largest database, with no entries: refused before allocating.
    let mut header = b"TSNDB\x00\x00\x01".to_vec();
    header.extend_from_slice(&u16::MAX.to_le_bytes());
    header.push(1);
    header.extend_from_slice(&64u16.to_le_bytes());
    header.extend_from_slice(&1.0f64.to_le_bytes());
    let e = Ndb::from_bytes(&header).unwrap_err().to_string();
    assert!(e.contains("need exactly"), "{e}");
    // Random bytes.
    for len in [0, 5, 13, 100, 4096] {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        assert!(Ndb::from_bytes(&junk).is_err());
    }
    // Bad probabilities in the header.
    let x = random_bits(&mut rng, 16);
    let mut bytes = Ndb::generate(&x, &NdbParams::recommended(), &mut rng)
        .unwrap()
        .to_bytes();
    bytes[13..21].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(Ndb::from_bytes(&bytes).is_err());
}

#[test]
fn entry_strings_read_as_in_the_papers() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = BitVec::from_bools(&[true, false, true, true, false, false]);
    let ndb = Ndb::generate(&x, &params(2, 1, &[1.0, 0.0]), &mut rng).unwrap();
    for e in 0..ndb.len() {
        let s = ndb.entry_string(e).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s.chars().filter(|&c| c != '*').count(), 2);
        // One specified bit agrees with x = 101100, one differs.
        let agree = s
            .chars()
            .zip("101100".chars())
            .filter(|&(a, b)| a != '*' && a == b)
            .count();
        assert_eq!(agree, 1, "{s}");
    }
}

#[test]
fn binarisation_tracks_the_angle() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let d = 32;
    let a: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
    let b: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
    let m = 8192;
    let bin = Binariser::new(d, m, 77).unwrap();
    let (ba, bb) = (bin.apply(&a).unwrap(), bin.apply(&b).unwrap());
    assert_eq!(ba, binarise(&a, m, 77).unwrap());
    assert_ne!(ba, binarise(&a, m, 78).unwrap());
    // The first bits of a longer string are the shorter string.
    let short = binarise(&a, 100, 77).unwrap();
    assert_eq!(short.to_bools()[..], ba.to_bools()[..100]);
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
    let angle = (dot / (norm(&a) * norm(&b))).acos();
    let frac = ba.hamming(&bb).unwrap() as f64 / m as f64;
    let expected = angle / std::f64::consts::PI;
    let sd = (expected * (1.0 - expected) / m as f64).sqrt();
    assert!((frac - expected).abs() < 4.0 * sd, "{frac} vs {expected}");
    // Scale does not change the bits; the negation flips them all.
    let scaled: Vec<f32> = a.iter().map(|v| v * 9.0).collect();
    assert_eq!(bin.apply(&scaled).unwrap(), ba);
    let neg: Vec<f32> = a.iter().map(|v| -v).collect();
    assert_eq!(bin.apply(&neg).unwrap().hamming(&ba), Some(m));
    assert!(bin.apply(&a[1..]).is_err());
    assert!(Binariser::new(0, 8, 1).is_err());
    assert!(Binariser::new(65_536, 65_536, 1).is_err());
}

#[test]
fn parameters_are_validated() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = random_bits(&mut rng, 16);
    for bad in [
        params(0, 8, &[]),
        params(3, 8, &[0.5, 0.5]),
        params(3, 8, &[0.5, 0.3, 0.1]),
        params(3, 8, &[1.2, -0.1, -0.1]),
        params(3, 0, &[0.6, 0.3, 0.1]),
        params(17, 1, &[1.0 / 17.0; 17]),
        params(3, 4097, &[0.6, 0.3, 0.1]),
    ] {
        assert!(Ndb::generate(&x, &bad, &mut rng).is_err(), "{bad:?}");
    }
    let long = random_bits(&mut rng, 65_536);
    let e = Ndb::generate(&long, &params(3, 100, &[0.6, 0.3, 0.1]), &mut rng).unwrap_err();
    assert!(e.to_string().contains("entries"), "{e}");
    assert!(expected_match_probability(17, 16, 3, &[0.6, 0.3, 0.1]).is_err());
    assert!(Ndb::generate(&BitVec::zeros(0), &NdbParams::recommended(), &mut rng).is_err());
}

#[test]
fn bit_vectors_serialize_with_their_invariant() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x = random_bits(&mut rng, 70);
    let json = serde_json::to_string(&x).unwrap();
    assert_eq!(serde_json::from_str::<BitVec>(&json).unwrap(), x);
    // Too few words, or bits set past the length: refused.
    assert!(serde_json::from_str::<BitVec>(r#"{"len":70,"words":[1]}"#).is_err());
    assert!(serde_json::from_str::<BitVec>(r#"{"len":3,"words":[8]}"#).is_err());
    assert!(serde_json::from_str::<BitVec>(r#"{"len":3,"words":[7]}"#).is_ok());
    let mut y = BitVec::zeros(3);
    y.set(1, true);
    assert_eq!(y.to_bools(), vec![false, true, false]);
    assert_eq!(y.hamming(&BitVec::zeros(4)), None);
}
