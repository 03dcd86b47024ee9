#!/usr/bin/env bash
# Rate limits with default settings (adaptive concurrency, no requests_per_second): pipe against
# a simulated giosg account that enforces LIMIT requests per second
#   1. unannounced: a token bucket (one second of burst), 429 + Retry-After: 1 past it;
#   2. announced: LIMIT per one-second window, stated in RateLimit-* headers on every answer;
#   3. announced as X-RateLimit-* (reset as a Unix time).
# Prints the achieved rate of answered (non-429) requests as a share of what the limit allowed
# over the run (LIMIT x (elapsed + 1 s): the limit's one second of burst or the window the run
# started in) and the share of requests answered 429. Measured in one run.
#
#   benches/rate_limits.sh [CHATS=600] [LIMIT=100] [LATENCY_MS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
CHATS=${1:-600}; LIMIT=${2:-100}; LATENCY=${3:-10}
mkdir -p target; work=$(mktemp -d "$PWD/target/bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
. benches/giosg_sim.sh
cargo build --release -q --workspace --bins

run_case() {
    local name=$1; shift
    start_sim "$name" "$CHATS" "$LATENCY" "$@"
    write_pipeline "$work/$name.toml" "$work/$name-out" ""
    timed_run "$name" "$work/$name.toml"
    stop_sim "$name"
}
run_case unannounced --rate-limit "$LIMIT"
run_case ietf --window-limit "$LIMIT" --quota-headers ietf
run_case xrate --window-limit "$LIMIT" --quota-headers x
echo "simulator: $CHATS chats, $MSGS messages, ${LATENCY} ms latency, limit $LIMIT requests/s"

python3 - "$work" "$LIMIT" <<'PY'
import json, sys
work, limit = sys.argv[1], float(sys.argv[2])
for name, label in [("unannounced", "unannounced limit (429 only)"), ("ietf", "RateLimit-* headers"), ("xrate", "X-RateLimit-* headers")]:
    r = json.load(open(f"{work}/{name}.json"))
    e = r["elapsed_s"]
    answered = r["requests"] - r["throttled_responses"]
    allowed = limit * (e + 1)
    learned = r["concurrency"]["learned_rate_per_s"]
    print(f"{label}: {e:.1f} s, {r['requests']} requests, {answered/e:.1f} answered/s = {answered/allowed*100:.1f} % of the "
          f"allowed {allowed:.0f}, {r['throttled_responses']} answered 429 = {r['throttled_responses']/r['requests']*100:.2f} %, "
          f"concurrency mean {r['concurrency']['mean']}, learned rate {learned}")
PY
