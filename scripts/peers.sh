#!/usr/bin/env bash
# Runs configs/peers.yaml with 1 and then 2 threads and prints, per gallery size, the
# cluster's evaluation time (server), the whole query (total) for fhe.rs's engine and the
# fused CPU engine, and their ratio within the same run. Every decrypted score is checked
# exact by the harness (a run with a wrong score fails).
#   scripts/peers.sh [TOUCHSTONE_BINARY]     (default: target/release/touchstone)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/touchstone}"
test -x "$bin" || { echo "no $bin: cargo build --release -p bench" >&2; exit 1; }
runs=()
for threads in 1 2; do
    RAYON_NUM_THREADS=$threads "$bin" run configs/peers.yaml --quiet
    runs+=("$threads=$(ls -td results/peers/*/ | head -n1)")
done
python3 - "${runs[@]}" <<'PY'
import csv, sys
print("| threads | users | fhe.rs server / total (ms) | fused server / total (ms) | server ratio | total ratio |")
print("|---:|---:|---:|---:|---:|---:|")
for arg in sys.argv[1:]:
    threads, run = arg.split("=", 1)
    print(f"<!-- {run} -->", file=sys.stderr)
    rows = list(csv.DictReader(open(f"{run}rows.csv")))
    by = {(r["engine"], int(r["users"])): r for r in rows}
    for users in sorted({int(r["users"]) for r in rows}):
        fhe, fused = by.get(("fhe", users)), by.get(("cpu", users))
        if not fhe or not fused:
            continue
        fs, ft = float(fhe["cluster_eval_ms_median"]), float(fhe["total_ms_median"])
        us, ut = float(fused["cluster_eval_ms_median"]), float(fused["total_ms_median"])
        print(f"| {threads} | {users:,} | {fs:.1f} / {ft:.1f} | {us:.1f} / {ut:.1f} | {fs/us:.1f}× | {ft/ut:.1f}× |")
PY
