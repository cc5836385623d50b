//! Index-of-Max hashing: hand-checked codes, token behaviour, validation.

use protect::iom::{similarity, Code, GrpHasher, GrpIom, Token, UrpHasher, UrpIom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian_vec(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    (0..d)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

#[test]
fn grp_from_parts_hand_checked() {
    // Function 0: e0, e1. Function 1: e0 + e1, −e2.
    #[rustfmt::skip]
    let w = vec![
        1.0, 0.0, 0.0,   0.0, 1.0, 0.0,
        1.0, 1.0, 0.0,   0.0, 0.0, -1.0,
    ];
    let h = GrpHasher::from_parts(2, 2, 3, w).unwrap();
    // ⟨·, x⟩: f0 → (0.2, 0.5) → 1; f1 → (0.7, −1.0) → 0.
    assert_eq!(h.hash(&[0.2, 0.5, 1.0]).unwrap(), Code(vec![1, 0]));
    // f0 → (−1, −2) → 0; f1 → (−3, 2) → 1.
    assert_eq!(h.hash(&[-1.0, -2.0, -2.0]).unwrap(), Code(vec![0, 1]));
    // Ties go to the lowest index: f0 → (0.5, 0.5); f1 → (1.0, 0.0).
    assert_eq!(h.hash(&[0.5, 0.5, 0.0]).unwrap(), Code(vec![0, 0]));
    assert_eq!(h.projection(1, 1).unwrap(), &[0.0, 0.0, -1.0]);
    assert!(h.projection(2, 0).is_none());
}

#[test]
fn grp_drawn_code_is_the_argmax_of_its_projections() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = gaussian_vec(&mut rng, 8);
    let (m, q) = (64, 2);
    let h = GrpIom::new(m, q).unwrap().hasher(Token(7), 8).unwrap();
    let code = h.hash(&x).unwrap();
    for i in 0..m {
        let dots: Vec<f64> = (0..q)
            .map(|j| {
                h.projection(i, j)
                    .unwrap()
                    .iter()
                    .zip(&x)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum()
            })
            .collect();
        let expected = if dots[1] > dots[0] { 1 } else { 0 };
        assert_eq!(code.0[i], expected, "function {i}: {dots:?}");
    }
    // The drawn projections are standard normal.
    let all: Vec<f64> = (0..m)
        .flat_map(|i| (0..q).map(move |j| (i, j)))
        .flat_map(|(i, j)| h.projection(i, j).unwrap().to_vec())
        .map(f64::from)
        .collect();
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64;
    assert!(mean.abs() < 0.15 && (var - 1.0).abs() < 0.2, "{mean} {var}");
}

#[test]
fn urp_from_parts_hand_checked() {
    // x = (1, 2, 3, −4); w = 3, p = 2.
    let x = [1.0, 2.0, 3.0, -4.0];
    #[rustfmt::skip]
    let perms = vec![
        // function 0: π1 = (2, 0, 3, …), π2 = (1, 3, 0, …)
        2, 0, 3,   1, 3, 0,
        // function 1: π1 = (0, 1, 2, …), π2 = (1, 2, 3, …)
        0, 1, 2,   1, 2, 3,
    ];
    let h = UrpHasher::from_parts(2, 3, 2, 4, perms).unwrap();
    // f0: (3, 1, −4) ⊙ (2, −4, 1) = (6, −4, −4) → 0.
    // f1: (1, 2, 3) ⊙ (2, 3, −4) = (2, 6, −12) → 1.
    assert_eq!(h.hash(&x).unwrap(), Code(vec![0, 1]));
    assert_eq!(h.permutation(1, 1).unwrap(), &[1, 2, 3]);
    // p = 1, w = d: plain argmax of x (ties to the lowest index).
    let id = UrpHasher::from_parts(1, 4, 1, 4, vec![0, 1, 2, 3]).unwrap();
    assert_eq!(id.hash(&[1.0, 5.0, 5.0, 2.0]).unwrap(), Code(vec![1]));
}

#[test]
fn urp_from_parts_rejects_non_permutations() {
    assert!(UrpHasher::from_parts(1, 3, 1, 4, vec![0, 1, 1]).is_err());
    assert!(UrpHasher::from_parts(1, 3, 1, 4, vec![0, 1, 4]).is_err());
    assert!(UrpHasher::from_parts(1, 3, 1, 4, vec![0, 1]).is_err());
    assert!(UrpHasher::from_parts(1, 5, 1, 4, vec![0, 1, 2, 3, 0]).is_err());
}

#[test]
fn urp_drawn_permutations_are_distinct_prefixes() {
    let (m, w, p, d) = (50, 10, 3, 16);
    let h = UrpIom::new(m, w, p).unwrap().hasher(Token(3), d).unwrap();
    for i in 0..m {
        for k in 0..p {
            let perm = h.permutation(i, k).unwrap();
            let mut sorted = perm.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), w);
            assert!(perm.iter().all(|&v| (v as usize) < d));
        }
    }
    // Re-hash through from_parts with the same permutations: same code.
    let perms: Vec<u32> = (0..m)
        .flat_map(|i| (0..p).map(move |k| (i, k)))
        .flat_map(|(i, k)| h.permutation(i, k).unwrap().to_vec())
        .collect();
    let again = UrpHasher::from_parts(m, w, p, d, perms).unwrap();
    let x = gaussian_vec(&mut ChaCha8Rng::seed_from_u64(5), d);
    assert_eq!(h.hash(&x).unwrap(), again.hash(&x).unwrap());
}

#[test]
fn tokens_renew_and_reproduce() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let d = 64;
    let x = gaussian_vec(&mut rng, d);
    let grp = GrpIom::new(300, 16).unwrap();
    let urp = UrpIom::new(600, 32, 2).unwrap();
    let a = grp.hash(Token(1), &x).unwrap();
    assert_eq!(a, grp.hash(Token(1), &x).unwrap());
    let b = grp.hash(Token(2), &x).unwrap();
    // Unrelated functions agree by chance ≈ 1/q.
    assert!(
        similarity(&a, &b).unwrap() < 0.2,
        "{}",
        similarity(&a, &b).unwrap()
    );
    let a = urp.hash(Token(1), &x).unwrap();
    assert_eq!(a, urp.hash(Token(1), &x).unwrap());
    let b = urp.hash(Token(2), &x).unwrap();
    assert!(
        similarity(&a, &b).unwrap() < 0.2,
        "{}",
        similarity(&a, &b).unwrap()
    );
    // GRP and URP with the same token and the same sizes are still different functions.
    assert_ne!(
        GrpIom::new(50, 4).unwrap().hash(Token(1), &x).unwrap(),
        GrpIom::new(50, 4).unwrap().hash(Token(9), &x).unwrap()
    );
}

#[test]
fn codes_track_similarity_and_ignore_scale() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let d = 128;
    let x = gaussian_vec(&mut rng, d);
    let noise = gaussian_vec(&mut rng, d);
    let near: Vec<f32> = x.iter().zip(&noise).map(|(a, n)| a + 0.3 * n).collect();
    let other = gaussian_vec(&mut rng, d);
    let scaled: Vec<f32> = x.iter().map(|v| 3.5 * v).collect();
    let grp = GrpIom::new(300, 16).unwrap().hasher(Token(11), d).unwrap();
    let urp = UrpIom::new(600, 16, 2)
        .unwrap()
        .hasher(Token(11), d)
        .unwrap();
    for hash in [&|v: &[f32]| grp.hash(v).unwrap() as Code, &|v: &[f32]| {
        urp.hash(v).unwrap() as Code
    }] as [&dyn Fn(&[f32]) -> Code; 2]
    {
        let cx = hash(&x);
        assert_eq!(cx, hash(&scaled));
        let genuine = similarity(&cx, &hash(&near)).unwrap();
        let impostor = similarity(&cx, &hash(&other)).unwrap();
        assert!(genuine > 0.4 && impostor < 0.2, "{genuine} {impostor}");
    }
}

#[test]
fn first_functions_do_not_depend_on_m() {
    let x = gaussian_vec(&mut ChaCha8Rng::seed_from_u64(6), 20);
    let short = GrpIom::new(10, 8).unwrap().hash(Token(5), &x).unwrap();
    let long = GrpIom::new(40, 8).unwrap().hash(Token(5), &x).unwrap();
    assert_eq!(short.0[..], long.0[..10]);
}

#[test]
fn codes_are_stable_across_builds() {
    // Pinned: enrolled templates must hash the same after any dependency upgrade.
    let x: Vec<f32> = (0..16).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
    let grp = GrpIom::new(12, 16).unwrap().hash(Token(42), &x).unwrap();
    let urp = UrpIom::new(12, 8, 2).unwrap().hash(Token(42), &x).unwrap();
    assert_eq!(grp.0, GRP_PINNED);
    assert_eq!(urp.0, URP_PINNED);
}
const GRP_PINNED: [u16; 12] = [10, 12, 5, 4, 6, 9, 2, 5, 0, 4, 5, 13];
const URP_PINNED: [u16; 12] = [6, 4, 7, 2, 5, 1, 1, 4, 0, 0, 5, 4];

#[test]
fn parameters_and_inputs_are_validated() {
    assert!(GrpIom::new(0, 16).is_err());
    assert!(GrpIom::new(10, 1).is_err());
    assert!(GrpIom::new(100_001, 16).is_err());
    assert!(GrpIom::new(10, 70_000).is_err());
    assert!(UrpIom::new(10, 0, 2).is_err());
    assert!(UrpIom::new(10, 4, 0).is_err());
    assert!(UrpIom::new(10, 4, 17).is_err());
    // w > d is only known with the data.
    let urp = UrpIom::new(10, 20, 2).unwrap();
    assert!(urp.hash(Token(1), &[0.5; 8]).is_err());
    // Too many numbers to materialise: refused before allocating.
    let big = GrpIom::new(100_000, 1024).unwrap();
    let e = big.hasher(Token(1), 4096).unwrap_err().to_string();
    assert!(e.contains("at most"), "{e}");
    let h = GrpIom::new(4, 2).unwrap().hasher(Token(1), 3).unwrap();
    assert!(h.hash(&[1.0, 2.0]).is_err());
    assert!(h.hash(&[1.0, f32::NAN, 0.0]).is_err());
    assert!(GrpHasher::from_parts(1, 2, 2, vec![0.0; 3]).is_err());
    assert!(similarity(&Code(vec![1, 2]), &Code(vec![1])).is_err());
    assert!(similarity(&Code(vec![]), &Code(vec![])).is_err());
    assert_eq!(
        similarity(&Code(vec![1, 2, 3, 4]), &Code(vec![1, 0, 3, 0])).unwrap(),
        0.5
    );
}
