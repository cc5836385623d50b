#!/usr/bin/env bash
# Everything a machine with an NVIDIA GPU should check, in one command:
#   scripts/gpu-check.sh [OUT_DIR]        (default: gpu-check/)
# 1. the host-emulated kernel tests (the same source, on the CPU: a baseline that must pass
#    everywhere), 2. the CUDA tests that are #[ignore]d without a GPU (NTT and fused
#    evaluation word for word against the CPU engine; end-to-end decrypted scores exact),
# 3. `touchstone gpu-bench --users 1000000` (exact 1:N match on the GPU, device-resident
#    NTT rates, gallery bandwidth against the device's copy bandwidth).
# Writes OUT_DIR/summary.json (each step: ok / failed / skipped: why, with seconds), every
# step's log, and gpu-bench.json. Exits non-zero if any step that could run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
users="${GPU_CHECK_USERS:-1000000}"
steps=()

record() { # name status seconds
    steps+=("{\"step\": \"$1\", \"status\": \"$2\", \"seconds\": $3}")
    echo "== $1: $2 ($3 s)"
}

run_step() { # name command...
    local name="$1"; shift
    local start=$SECONDS
    if "$@" >"$out/$name.log" 2>&1; then
        record "$name" ok $((SECONDS - start))
    else
        record "$name" "failed (exit $?, see $name.log)" $((SECONDS - start))
        failed=1
    fi
}

failed=0
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } \
    >"$out/nvidia-smi.txt" 2>&1
gpu="$(head -n1 "$out/nvidia-smi.txt")"
if ! command -v cargo >/dev/null; then
    record toolchain "skipped: no cargo on this machine (install Rust with rustup)" 0
    printf '{"gpu": "%s", "steps": [%s]}\n' "$gpu" "$(IFS=,; echo "${steps[*]}")" >"$out/summary.json"
    exit 1
fi

run_step host-emulated-kernels cargo test -p kernels --lib gpu::
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
    record cuda-tests "skipped: no NVIDIA driver (nvidia-smi failed)" 0
    record gpu-bench "skipped: no NVIDIA driver (nvidia-smi failed)" 0
else
    run_step cuda-kernel-tests cargo test --release -p kernels --features cuda \
        --test ntt_matches_fhe_math -- --include-ignored
    run_step cuda-exactness cargo test --release -p protocol --features cuda \
        --test exactness fused_cuda -- --include-ignored
    run_step gpu-bench cargo run --release -p bench --features cuda -- \
        gpu-bench --users "$users" --out "$out/gpu-bench.json"
fi
printf '{"gpu": "%s", "users": %s, "steps": [%s]}\n' \
    "$gpu" "$users" "$(IFS=,; echo "${steps[*]}")" >"$out/summary.json"
cat "$out/summary.json"
exit "$failed"
