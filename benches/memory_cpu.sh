#!/usr/bin/env bash
# Memory and CPU of `pipe run` with default settings, the simulator in its own process with no
# latency (so the run is CPU-bound):
#   * peak RSS at 10x the data over 1x (CHATS and 10 x CHATS chats);
#   * CPU seconds (user + system) per 100,000 messages on the 10x run, against the old fixed
#     default `concurrency = 4` on the same data in the same run;
#   * with PROFILE=1, a `perf record -g` profile of the 10x run (top symbols, self time).
#
#   benches/memory_cpu.sh [CHATS=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
CHATS=${1:-1000}
mkdir -p target; work=$(mktemp -d "$PWD/target/bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
. benches/giosg_sim.sh
cargo build --release -q --workspace --bins

start_sim one "$CHATS" 0
MSGS1=$MSGS
write_pipeline "$work/one.toml" "$work/one-out" ""
timed_run one "$work/one.toml"
stop_sim one

start_sim ten $((CHATS * 10)) 0
write_pipeline "$work/ten.toml" "$work/ten-out" ""
timed_run ten "$work/ten.toml"
write_pipeline "$work/ten4.toml" "$work/ten4-out" "concurrency = 4"
timed_run ten4 "$work/ten4.toml"
if [ "${PROFILE:-0}" = 1 ]; then
    write_pipeline "$work/prof.toml" "$work/prof-out" ""
    BENCH_TOKEN=$TOKEN perf record -q -g -o "$work/perf.data" ./target/release/pipe -q run "$work/prof.toml" > /dev/null 2>&1
fi
stop_sim ten

python3 - "$work" "$MSGS1" "$MSGS" <<'PY'
import json, sys
work, m1, m10 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def t(name):
    e, u, s, m = open(f"{work}/{name}.time").read().split()[-4:]
    return float(e), float(u) + float(s), int(m) / 1024
e1, c1, r1 = t("one"); e10, c10, r10 = t("ten"); e4, c4, r4 = t("ten4")
print(f"1x:  {m1:,} messages, {e1:.1f} s, {c1:.2f} CPU-s, peak RSS {r1:.0f} MiB")
print(f"10x: {m10:,} messages, {e10:.1f} s, {c10:.2f} CPU-s, peak RSS {r10:.0f} MiB")
print(f"peak RSS 10x / 1x: {r10/r1:.2f}")
print(f"CPU-s per 100k messages (10x, defaults): {c10/m10*1e5:.2f}; with concurrency = 4: {c4/m10*1e5:.2f} "
      f"(ratio {c10/c4:.2f}); elapsed {e10:.1f} s vs {e4:.1f} s")
PY
if [ "${PROFILE:-0}" = 1 ]; then
    echo "profile (perf, self time, top 25):"
    perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v '^#' | grep '%' | head -25
fi
