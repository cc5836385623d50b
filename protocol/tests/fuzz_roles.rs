//! No panic escapes any role on mutated messages with valid envelopes (see
//! `tests/fuzz/mod.rs`). CI runs a few thousand mutations; the long runs are
//! `cargo run --release -p protocol --example fuzz_roles -- --iters 100000`.

mod fuzz;

#[test]
fn mutated_messages_of_every_kind_never_panic_a_role() {
    let iterations: u64 = std::env::var("TOUCHSTONE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut reports = Vec::new();
    for deployment in fuzz::deployments() {
        for kind in fuzz::KINDS {
            reports.push(fuzz::run(&deployment, kind, iterations, 0x5eed));
        }
    }
    let table = fuzz::render(&reports);
    println!("{table}");
    for r in &reports {
        assert_eq!(r.escaped, 0, "{}: a panic escaped\n{table}", r.target);
        assert_eq!(r.iterations, iterations);
        assert!(
            r.refused > 0,
            "{}: no mutation was refused, so none reached a check\n{table}",
            r.target
        );
    }
}
