#!/usr/bin/env bash
# Kubernetes' external storage conformance suite (e2e.test v1.36.3 with
# -storage.testdriver=tests/storage-e2e/berth-driver.yaml) against berth on a
# real kubelet node of this machine. Needs root and the packages .ci/run
# installs; one real node per machine, so never beside `cargo test` of
# tests/tests/real_node.rs.
#
# Builds (or reuses, from .cache/) e2e.test, agnhost and ginkgo from the
# pinned wrapper module and snapshot-controller and csi-snapshotter from
# external-snapshotter's (tests/k8s/build.sh --e2e), berth's release binary
# unless $BERTH_BIN names one, and the runner (tests/src/bin/storage-e2e.rs),
# then runs the runner: node, deploy/, snapshotter, images, the selected
# specs (ginkgo, 3 processes), teardown. What is left out and why: SKIPS in
# the runner; what is declared: tests/storage-e2e/berth-driver.yaml.
#
#   tests/storage-e2e/run.sh                 the CI subset (20 min budget)
#   tests/storage-e2e/run.sh --full          [Slow] and [Serial] specs too
#   tests/storage-e2e/run.sh --dry-run       list the selected specs
#   tests/storage-e2e/run.sh --focus REGEX --report-dir DIR --budget-minutes N
#
# Ends with "storage-e2e: N passed, N failed, N skipped"; exits non-zero on
# any failed spec or a failure of the run itself.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

t0=$SECONDS
bash tests/k8s/build.sh --e2e >/dev/null
echo "storage-e2e: e2e.test, agnhost, ginkgo and the snapshotter ready in $((SECONDS - t0))s" >&2

if [[ -z "${BERTH_BIN:-}" ]]; then
    cargo build --release -p berth
    export BERTH_BIN="$REPO/target/release/berth"
fi
cargo build --release -p berth-tests --bin storage-e2e
target="${CARGO_TARGET_DIR:-$REPO/target}"
exec "$target/release/storage-e2e" "$@"
