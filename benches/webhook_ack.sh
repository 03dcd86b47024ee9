#!/usr/bin/env bash
# Webhook acknowledgement latency: SENDERS concurrent senders (keep-alive connections, the
# secret in a header) POST one Aimylogic webhook event each, POSTS in all, to a `pipe run` of a
# minimal webhook pipeline writing Parquet. Reports the time from sending a POST to its answer
# (p50 / p99 / max, ms) for, in one script run:
#
#   default      the pipeline as shipped minimal: no `commit_interval_seconds` (the source asks
#                for prompt commits: as soon as a checkpoint is pending and the previous commit
#                has finished, checkpoints of concurrent POSTs share one commit)
#   interval0    `commit_interval_seconds = 0`: the best setting before prompt commits (one
#                commit per checkpoint, no sharing). Before the change the default (60 s,
#                with a 30 s ack timeout) answered every POST 503 after 30 s.
#   echo         a bare HTTP server in Python that reads the body and answers 200 at once:
#                the floor set by the client, loopback and HTTP parsing on this machine
#
#   benches/webhook_ack.sh [POSTS=400] [SENDERS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
POSTS=${1:-400}; SENDERS=${2:-8}
PY=${PIPE_TEST_PYTHON:-python3}
work=$(mktemp -d)
PID=""
trap 'if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

cargo build --release -q -p pipe-engine --bin pipe

export AIMYLOGIC_TOKEN="BenchChn:0123456789abcdef0123456789abcdef01234567"
export HOOK_SECRET="bench-secret-0123456789abcdef"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_health() {
  "$PY" - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(600):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1); sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("no /healthz")
PY
}

# drive PORT LABEL: the senders; prints one line of figures.
drive() {
  "$PY" - "$1" "$2" "$POSTS" "$SENDERS" <<'PY'
import http.client, json, os, statistics, sys, threading, time
port, label, posts, senders = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
token, secret = os.environ["AIMYLOGIC_TOKEN"], os.environ["HOOK_SECRET"]
lat, failed, lock = [], [], threading.Lock()
def sender(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for n in range(k, posts, senders):
        body = json.dumps([{"token": token, "clientId": f"c{n % 50}", "questionId": f"q{n}", "query": "hi",
                            "data": {"replies": [{"type": "text", "text": "hello"}]},
                            "timestamp": "2026-01-01T00:00:00.000"}]).encode()
        # bytes: http.client then sends head and body in one write (no Nagle/delayed-ACK wait)
        t = time.perf_counter()
        try:
            conn.request("POST", "/hook", body, {"Content-Type": "application/json", "X-Webhook-Secret": secret})
            r = conn.getresponse(); r.read(); ok = r.status == 200
        except Exception:
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60); ok = False
        dt = (time.perf_counter() - t) * 1000
        with lock:
            (lat if ok else failed).append(dt)
t0 = time.perf_counter()
threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.perf_counter() - t0
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{label:10} {len(lat)} acked, {len(failed)} failed; p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
      f"max {lat[-1]:.1f} ms; {len(lat) / wall:.0f} POSTs/s")
with open(os.environ["RESULTS"], "a") as f:
    f.write(f"{label} {p(0.5)} {p(0.99)}\n")
PY
}

export RESULTS="$work/results"
: > "$RESULTS"

# pipe_case LABEL TOP_LEVEL_LINE
pipe_case() {
  local port; port=$(free_port)
  cat > "$work/$1.toml" <<EOF
name = "bench-$1"
$2

[source]
plugin = "aimylogic"
mode = "webhook"
token = "\${AIMYLOGIC_TOKEN}"
listen = "127.0.0.1:$port"
path = "/hook"
secret = "\${HOOK_SECRET}"

[[sinks]]
plugin = "parquet"
path = "$work/out-$1"

[state]
path = "$work/state-$1"

[dead_letter]
path = "$work/dl-$1"
EOF
  PIPE_LOG=warn ./target/release/pipe run "$work/$1.toml" 2>"$work/$1.log" >/dev/null &
  PID=$!
  wait_health "$port"
  drive "$port" "$1"
  kill -TERM "$PID"; wait "$PID" || { echo "pipe ($1) exited $?"; cat "$work/$1.log"; exit 1; }
  PID=""
}

echo "$POSTS POSTs of one event, $SENDERS concurrent senders, $(nproc) cores"
pipe_case default ""
pipe_case interval0 "commit_interval_seconds = 0"

port=$(free_port)
"$PY" - "$port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"ok": true}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.do_POST()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PID=$!
wait_health "$port"
drive "$port" echo
kill "$PID"; PID=""

"$PY" - "$RESULTS" <<'PY'
import sys
r = {l.split()[0]: tuple(map(float, l.split()[1:])) for l in open(sys.argv[1])}
d, i, e = r["default"], r["interval0"], r["echo"]
print(f"default vs interval0: p50 {d[0] / i[0]:.2f}x, p99 {d[1] / i[1]:.2f}x")
print(f"default vs echo:      p50 {d[0] / e[0]:.1f}x, p99 {d[1] / e[1]:.1f}x")
PY
