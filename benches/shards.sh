#!/usr/bin/env bash
# Sharded vs unsharded: ACCOUNTS simulated giosg organizations with added latency, exported by
# one `pipe run` and by 3 concurrent `pipe run --shard K/3` (as 3 orchestrator tasks would),
# into the same kind of local Parquet output. Reports wall time of each and the ratio, measured
# in one run, plus a check that both exported the same number of rows.
#
#   benches/shards.sh [ACCOUNTS=9] [CHATS=150] [LATENCY_MS=30] [MAX_CONCURRENT_ACCOUNTS=1]
#
# MAX_CONCURRENT_ACCOUNTS bounds the accounts one process runs at once (in production: what
# one task's network share, memory and the vendors' per-client limits allow).
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${1:-9}; CHATS=${2:-150}; LATENCY=${3:-30}; MAXC=${4:-1}
work=$(mktemp -d)
trap 'kill $SIM_PID 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p pipe-engine -p pipe-sim --bin pipe --bin giosg-sim

mkfifo "$work/sim_in"
./target/release/giosg-sim "$CHATS" "$LATENCY" 40 "$ACCOUNTS" < "$work/sim_in" > "$work/sim.jsonl" &
SIM_PID=$!
exec 3>"$work/sim_in"
while [ "$(wc -l < "$work/sim.jsonl")" -lt "$ACCOUNTS" ]; do sleep 0.1; done

python3 - "$work" "$MAXC" <<'PY'
import json, sys
work, maxc = sys.argv[1], sys.argv[2]
accounts = [json.loads(l) for l in open(f"{work}/sim.jsonl")]
for name in ["all", "sharded"]:
    with open(f"{work}/{name}.toml", "w") as f:
        f.write(f'name = "fleet"\n[source]\nplugin = "giosg"\nmax_concurrent_accounts = {maxc}\nconcurrency = 8\n\n')
        for i, a in enumerate(accounts):
            f.write(f'[[source.accounts]]\nid = "brand-{i}"\nbase_url = "{a["base_url"]}"\norganization_id = "{a["organization_id"]}"\ntoken = "{a["token"]}"\n\n')
        f.write(f'[[sinks]]\nplugin = "parquet"\npath = "{work}/{name}-out"\n\n[state]\npath = "{work}/{name}-state"\n')
print(f"{len(accounts)} accounts, {sum(a['messages'] for a in accounts)} messages")
PY

rows() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(r['rows'].values()))" "$1"; }

t0=$(date +%s.%N)
./target/release/pipe run "$work/all.toml" -q --report "$work/all.json"
t1=$(date +%s.%N)
pids=()
for k in 0 1 2; do
  ./target/release/pipe run "$work/sharded.toml" -q --shard "$k/3" --report "$work/s$k.json" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t2=$(date +%s.%N)

all_rows=$(rows "$work/all.json")
shard_rows=$(( $(rows "$work/s0.json") + $(rows "$work/s1.json") + $(rows "$work/s2.json") ))
python3 - "$t0" "$t1" "$t2" "$all_rows" "$shard_rows" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:4]); a, s = sys.argv[4], sys.argv[5]
print(f"unsharded: {t1 - t0:.1f} s ({a} rows)")
print(f"3 shards:  {t2 - t1:.1f} s ({s} rows)")
print(f"ratio sharded/unsharded: {(t2 - t1) / (t1 - t0):.2f}x")
PY
