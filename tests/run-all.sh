#!/usr/bin/env bash
# berth's whole test suite, as CI runs it (needs root for the CSI suites):
#   1. formatting;
#   2. the real control plane's binaries (etcd, kube-apiserver,
#      kube-controller-manager, kube-scheduler), built from the Go module
#      proxy and cached under .cache/ (a warm run takes well under a second);
#   3. every Rust test of the workspace (unit, table-driven, property tests,
#      CLI contract, CSI crash test, end-to-end against the control plane) in
#      release mode, all using the one `berth` binary built first;
#   4. the upstream csi-sanity conformance suite against `berth csi`;
#   5. the fuzz targets, 30 s each (tests/fuzz/run.sh: the manifest loader,
#      converter and planner, the quantity parser, the CSI request checks;
#      cargo-fuzz on the nightly toolchain, installed when missing);
#   6. Kubernetes' own external storage conformance suite (e2e.test v1.36.3,
#      its CI subset) against berth on the real kubelet node
#      (tests/storage-e2e/run.sh); after cargo test, never beside it: the
#      machine holds one real node at a time;
#   7. the side-by-side benchmarks' entry point at smoke size
#      (bench/compare.sh --smoke: every upstream peer builds from the Go
#      module proxy and every comparison runs end to end; figures are
#      thrown away, the full-size run is `bench/compare.sh`);
#   8. image-backed volumes at smoke size (image_volume_bench --smoke: 20
#      ext4 volumes staged over gRPC, kill -9, every loop device released;
#      the 500-volume run is `target/release/image_volume_bench`).
# Prints a closing "berth: N passed, N failed" line and exits non-zero on any failure.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LOG_DIR="$(mktemp -d /tmp/berth-tests.XXXXXX)"
PASSED=0
FAILED=0
STATUS=0

# Each step's header shows the free disk space (the suites build, format and
# mount a lot; a full disk fails them in confusing ways), and the closing
# summary lists each step's wall time.
TIMES=()
STEP_NAME="" STEP_START=$SECONDS
end_step() {
    [[ -n "$STEP_NAME" ]] && TIMES+=("$(printf '%6d s  %s' $((SECONDS - STEP_START)) "$STEP_NAME")")
    STEP_NAME="" STEP_START=$SECONDS
}
step() {
    end_step
    STEP_NAME="$*"
    printf '\n==> %s (%s free on /)\n' "$*" "$(df -h --output=avail / | tail -1 | tr -d ' ')"
}

# Runs a step whose output ends with "<prefix>: N passed, N failed" and adds
# its counts; a step that fails without that line counts as one failure.
counted() {
    local prefix="$1" log="$LOG_DIR/$1.log" rc line
    shift
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line="$(grep -E "^$prefix: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)"
    if [[ -n "$line" ]]; then
        PASSED=$((PASSED + $(sed -E "s/^$prefix: ([0-9]+) passed.*/\1/" <<<"$line")))
        FAILED=$((FAILED + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
    fi
    if [[ $rc -ne 0 ]]; then
        STATUS=1
        [[ -n "$line" ]] || FAILED=$((FAILED + 1))
    fi
}

step "cargo fmt --check"
if ! cargo fmt --all -- --check; then
    echo "formatting differs: run cargo fmt --all" >&2
    STATUS=1
fi

step "control plane binaries (tests/k8s/build.sh)"
if ! bash tests/k8s/build.sh; then
    echo "building the control plane failed" >&2
    STATUS=1
    FAILED=$((FAILED + 1))
fi

step "cargo build --release -p berth"
if cargo build --release -p berth; then
    # Every suite runs this binary; none rebuilds it.
    export BERTH_BIN="$REPO/target/release/berth"
else
    STATUS=1
    FAILED=$((FAILED + 1))
fi

step "cargo test --workspace --release"
cargo test --workspace --release 2>&1 | tee "$LOG_DIR/cargo-test.log"
rc=${PIPESTATUS[0]}
while read -r p f; do
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$LOG_DIR/cargo-test.log")
if [[ $rc -ne 0 ]]; then
    STATUS=1
    # A build failure or crashed test binary reports no counts: count it.
    FAILED=$((FAILED + 1))
fi

step "csi-sanity (upstream conformance) against berth csi"
counted csi-sanity bash tests/csi/run-sanity.sh

step "fuzz targets (tests/fuzz/run.sh, 30 s each)"
counted fuzz bash tests/fuzz/run.sh --seconds 30

step "Kubernetes storage e2e (tests/storage-e2e/run.sh, CI subset) on the real node"
counted storage-e2e bash tests/storage-e2e/run.sh

step "bench/compare.sh --smoke (the five comparisons, tiny sizes)"
if bash bench/compare.sh --smoke; then
    PASSED=$((PASSED + 1))
else
    STATUS=1
    FAILED=$((FAILED + 1))
fi

step "image_volume_bench --smoke (20 image-backed volumes staged, kill -9, released)"
if cargo build --release -p berth-bench --bin image_volume_bench &&
    target/release/image_volume_bench --smoke; then
    PASSED=$((PASSED + 1))
else
    STATUS=1
    FAILED=$((FAILED + 1))
fi

end_step
rm -rf "$LOG_DIR"
echo
echo "wall time per step (total ${SECONDS} s, $(df -h --output=avail / | tail -1 | tr -d ' ') free on / at the end):"
printf '%s\n' "${TIMES[@]}"
echo
echo "berth: $PASSED passed, $FAILED failed"
exit $STATUS
