#!/usr/bin/env bash
# End-to-end extraction benchmark: pipe vs a dlt `rest_api` pipeline on the same simulated giosg
# account with added latency, both writing Parquet. Reports rows/s, requests/s, peak RSS and the
# ratio, measured in one run.
#
#   benches/e2e.sh [CHATS=2000] [LATENCY_MS=50] [CONCURRENCY=16]
set -euo pipefail
cd "$(dirname "$0")/.."
CHATS=${1:-2000}; LATENCY=${2:-50}; CONC=${3:-16}
work=$(mktemp -d)
trap 'kill $SIM_PID 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p pipe-engine -p pipe-sim --bin pipe --bin giosg-sim
if [ ! -x .venv-bench/bin/python ]; then python3 -m venv .venv-bench; fi
.venv-bench/bin/pip install -q --disable-pip-version-check "dlt[parquet]" pyarrow

mkfifo "$work/sim_in"
./target/release/giosg-sim "$CHATS" "$LATENCY" < "$work/sim_in" > "$work/sim.json" &
SIM_PID=$!
exec 3>"$work/sim_in"
while [ ! -s "$work/sim.json" ]; do sleep 0.1; done
read -r BASE ORG TOKEN MSGS < <(python3 -c "import json,sys; d=json.load(open('$work/sim.json')); print(d['base_url'], d['organization_id'], d['token'], d['messages'])")
echo "simulator: $CHATS chats, $MSGS messages, ${LATENCY} ms latency at $BASE"

cat > "$work/p.toml" <<TOML
name = "bench"
[source]
plugin = "giosg"
base_url = "$BASE"
organization_id = "$ORG"
token = "\${BENCH_TOKEN}"
concurrency = $CONC
[[sinks]]
plugin = "parquet"
path = "$work/pipe-out"
[state]
path = "$work/state"
TOML

t0=$(date +%s.%N)
BENCH_TOKEN=$TOKEN /usr/bin/time -f "%M" -o "$work/pipe.rss" ./target/release/pipe -q run "$work/p.toml" --report "$work/pipe.json"
t1=$(date +%s.%N)
pipe_s=$(python3 -c "print($t1-$t0)")

cat > "$work/dlt_run.py" <<PY
import dlt, sys
from dlt.sources.rest_api import rest_api_source
base, org, token = sys.argv[1:4]
src = rest_api_source({
    "client": {"base_url": f"{base}/api/v5/orgs/{org}/", "headers": {"Authorization": f"Token {token}"},
               "paginator": {"type": "json_link", "next_url_path": "next"}},
    "resource_defaults": {"endpoint": {"data_selector": "results"}},
    "resources": [
        {"name": "chats", "endpoint": {"path": "owned_chats", "params": {"page_size": 100}}},
        {"name": "messages", "parallelized": True,
         "endpoint": {"path": "owned_chats/{resources.chats.id}/messages", "params": {"page_size": 100}}},
        {"name": "memberships", "parallelized": True,
         "endpoint": {"path": "owned_chats/{resources.chats.id}/memberships"}},
        {"name": "tags", "parallelized": True,
         "endpoint": {"path": "owned_chats/{resources.chats.id}/tags"}},
    ],
})
p = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.filesystem(sys.argv[4]), dataset_name="giosg")
info = p.run(src, loader_file_format="parquet")
print(info)
PY
t0=$(date +%s.%N)
( cd "$work" && /usr/bin/time -f "%M" -o "$work/dlt.rss" "$OLDPWD/.venv-bench/bin/python" dlt_run.py "$BASE" "$ORG" "$TOKEN" "file://$work/dlt-out" > "$work/dlt.log" 2>&1 ) || { echo "dlt failed:"; tail -20 "$work/dlt.log"; }
t1=$(date +%s.%N)
dlt_s=$(python3 -c "print($t1-$t0)")

python3 - "$work" "$pipe_s" "$dlt_s" "$MSGS" <<'PY'
import json, sys
work, pipe_s, dlt_s, msgs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
r = json.load(open(f"{work}/pipe.json"))
rss = lambda f: int(open(f"{work}/{f}").read().split()[-1]) / 1024
print(f"pipe: {pipe_s:.1f} s, {r['rows'].get('messages', 0)/pipe_s:,.0f} messages/s, {r['requests']/pipe_s:,.0f} requests/s, peak RSS {rss('pipe.rss'):.0f} MiB")
print(f"dlt:  {dlt_s:.1f} s, {msgs/dlt_s:,.0f} messages/s, peak RSS {rss('dlt.rss'):.0f} MiB")
print(f"ratio (dlt time / pipe time): {dlt_s/pipe_s:.1f}x")
PY
