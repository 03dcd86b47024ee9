#!/usr/bin/env bash
# Long property runs: every property of tests/tests/plugins/properties.rs (vendor mappings of
# giosg, Alli and Aimylogic on arbitrary vendor-shaped JSON, the pipeline-file loader, the
# giosg ciphertext parser) for CASES cases each (default 100,000; CI runs 2,000). Prints each
# property's result and the wall time; a failure prints the minimal failing input.
#
#   benches/properties.sh [CASES=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-100000}
start=$(date +%s)
PROPTEST_CASES=$CASES cargo test --release -q --workspace --test plugins properties:: -- --test-threads 2 2>&1 \
    | grep -E "^test |test result|minimal failing|panicked" || true
echo "cases per property: $CASES; wall: $(( $(date +%s) - start )) s"
