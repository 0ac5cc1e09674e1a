#!/usr/bin/env bash
# Binding-core figures: builds release, runs the `berth dry-run` bench on
# generated clusters of 1k, 10k and 100k PVs x PVCs (time and peak memory),
# then the criterion benchmark of `plan`. Output is also written to
# bench/results/binding.txt, which bench/README.md quotes.
#
# Usage: bench/run-binding.sh [--quick]
#   --quick   passes --quick to criterion (fewer samples, less accurate)
# Environment: SIZES (default 1000,10000,100000), SEED (default 1).
set -euo pipefail

cd "$(dirname "$0")/.."
quick=()
if [[ "${1:-}" == "--quick" ]]; then
    quick=(--quick)
fi
sizes="${SIZES:-1000,10000,100000}"
seed="${SEED:-1}"
mkdir -p bench/results
out=bench/results/binding.txt

# Pin to one core when possible: the target is stated for one core, and a
# pinned run is less noisy on a shared machine.
pin=()
if command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c 0)
fi

{
    echo "# berth binding bench, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# $(uname -srm); $(nproc) CPU(s); $(rustc --version)"
    grep -m1 'model name' /proc/cpuinfo || true
} | tee "$out"

cargo build --release -p berth -p berth-bench --bins
target/release/dry_run_bench --sizes "$sizes" --seed "$seed" 2>&1 | tee -a "$out"

# criterion prints to stdout; its progress lines go to stderr.
cargo bench -p berth-bench --bench plan --no-run
"${pin[@]}" cargo bench -p berth-bench --bench plan -- "${quick[@]}" 2>&1 | tee -a "$out"
