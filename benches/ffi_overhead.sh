#!/usr/bin/env bash
# Overhead of plugins loaded as dynamic libraries against the built-ins, on the same pipeline
# (giosg simulator → parquet), as a ratio measured in one run. Release build; prints medians.
#
#   benches/ffi_overhead.sh                     # 3000 chats, 5 rounds
#   PIPE_BENCH_CHATS=10000 PIPE_BENCH_ROUNDS=3 benches/ffi_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary, the plugin libraries (libpipe_*.so) and the bench harness, all release.
cargo build --release --workspace --all-targets
# The benchmarks are the ignored tests of module `bench` in the `ffi` test binary.
cargo test --release -p pipe-tests --test ffi -- bench:: --ignored --nocapture --test-threads=1 2>&1 \
  | grep -A5 "^ffi "
