//! The long fuzz run: `cargo run --release -p protocol --example fuzz_roles -- --iters 100000
//! [--seed S] [--only query]` mutates every message kind of both layouts `--iters` times
//! (re-sealed, so mutations reach the decoders) and prints, per target, how many were
//! accepted, refused, escaped as a panic (must be 0), caught inside fhe.rs decoding, and
//! the slowest delivery. Exits non-zero if any panic escaped.

#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

fn main() {
    let mut iters = 100_000u64;
    let mut seed = 0x5eedu64;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--iters" => iters = value().parse().expect("--iters N"),
            "--seed" => seed = value().parse().expect("--seed S"),
            "--only" => only = Some(value()),
            other => {
                eprintln!("unknown argument {other}; usage: fuzz_roles [--iters N] [--seed S] [--only KIND]");
                std::process::exit(2);
            }
        }
    }
    let mut reports = Vec::new();
    for deployment in fuzz::deployments() {
        for kind in fuzz::KINDS {
            if only.as_deref().is_some_and(|o| !kind.name().contains(o)) {
                continue;
            }
            let start = std::time::Instant::now();
            let report = fuzz::run(&deployment, kind, iters, seed);
            eprintln!(
                "{}: {} mutations in {:.1} s",
                report.target,
                report.iterations,
                start.elapsed().as_secs_f64()
            );
            reports.push(report);
        }
    }
    println!("{}", fuzz::render(&reports));
    if reports.iter().any(|r| r.escaped > 0) {
        std::process::exit(1);
    }
}
