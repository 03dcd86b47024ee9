#!/usr/bin/env bash
# End-to-end extraction benchmark: pipe with its default settings (adaptive concurrency) vs a
# dlt `rest_api` pipeline with `parallelized` on the same simulated giosg account with added
# latency, both writing Parquet; also pipe with the old fixed default (`concurrency = 4`), and
# the simulator's own ceiling (requests per second it serves to 256 keep-alive clients, by
# ApacheBench `ab` when installed: apt-get install apache2-utils). All measured in one run.
#
#   benches/e2e.sh [CHATS=300] [LATENCY_MS=30] [CONCURRENCY=adaptive]
set -euo pipefail
cd "$(dirname "$0")/.."
CHATS=${1:-300}; LATENCY=${2:-30}; CONC=${3:-adaptive}
mkdir -p target; work=$(mktemp -d "$PWD/target/bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
. benches/giosg_sim.sh

cargo build --release -q --workspace --bins
if [ ! -x .venv-bench/bin/python ]; then python3 -m venv .venv-bench; fi
.venv-bench/bin/pip install -q --disable-pip-version-check "dlt[parquet]" pyarrow

start_sim SIM "$CHATS" "$LATENCY"
echo "simulator: $CHATS chats, $MSGS messages, ${LATENCY} ms latency at $BASE"

extra=""; [ "$CONC" = adaptive ] || extra="concurrency = $CONC"
write_pipeline "$work/p.toml" "$work/pipe-out" "$extra"
timed_run pipe "$work/p.toml"
write_pipeline "$work/p4.toml" "$work/pipe4-out" "concurrency = 4"
timed_run pipe4 "$work/p4.toml"

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
( cd "$work" && /usr/bin/time -f "%e %U %S %M" -o "$work/dlt.time" "$OLDPWD/.venv-bench/bin/python" dlt_run.py "$BASE" "$ORG" "$TOKEN" "file://$work/dlt-out" > "$work/dlt.log" 2>&1 ) || { echo "dlt failed:"; tail -20 "$work/dlt.log"; }

ceiling=""
if command -v ab > /dev/null; then
    ab -q -k -c 256 -n 20000 -H "Authorization: Token $TOKEN" "$BASE/api/v5/orgs/$ORG/owned_chats?page_size=25" > "$work/ab.txt" 2>&1 || true
    ceiling=$(awk '/Requests per second/ {print $4}' "$work/ab.txt")
fi
stop_sim SIM

python3 - "$work" "$MSGS" "$ceiling" <<'PY'
import json, sys
work, msgs, ceiling = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def t(name):
    e, u, s, m = open(f"{work}/{name}.time").read().split()[-4:]
    return float(e), float(u) + float(s), int(m) / 1024
def line(label, name):
    e, cpu, rss = t(name)
    r = json.load(open(f"{work}/{name}.json"))
    c = r["concurrency"]
    print(f"{label}: {e:.1f} s, {r['rows'].get('messages', 0)/e:,.0f} messages/s, {r['requests']} requests "
          f"({r['requests']/e:,.0f}/s, {r['requests_per_conversation']} per conversation), concurrency "
          f"{'adaptive' if c['adaptive'] else 'fixed'} mean {c['mean']} last {c['last']}, {cpu:.2f} CPU-s, peak RSS {rss:.0f} MiB")
    return e
pipe_s = line("pipe (defaults)", "pipe")
pipe4_s = line("pipe (concurrency = 4)", "pipe4")
dlt_s, dlt_cpu, dlt_rss = t("dlt")
print(f"dlt:  {dlt_s:.1f} s, {msgs/dlt_s:,.0f} messages/s, {dlt_cpu:.2f} CPU-s, peak RSS {dlt_rss:.0f} MiB")
print(f"simulator ceiling: {ceiling or 'n/a (no ab)'} requests/s (ab, 256 keep-alive clients)")
print(f"ratio dlt time / pipe time (defaults): {dlt_s/pipe_s:.1f}x; concurrency=4 time / defaults: {pipe4_s/pipe_s:.1f}x")
PY
