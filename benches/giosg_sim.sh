# Helpers for the benches that run `pipe` against the standalone giosg simulator (sourced, not
# run). Needs $work (a scratch directory) and the release binaries.
#
#   start_sim NAME SIM-ARGS...   starts target/release/giosg-sim SIM-ARGS in the background;
#                                sets BASE ORG TOKEN MSGS and NAME_PID (stop: stop_sim NAME)
#   stop_sim NAME                closes its standard input and waits; its last stderr line
#                                ("N requests served ... (M answered 429)") is in $work/NAME.err
#   write_pipeline FILE OUT EXTRA  a giosg → Parquet pipeline at $BASE, EXTRA lines in [source]
#   timed_run NAME FILE          runs pipe with /usr/bin/time; $work/NAME.time holds
#                                "elapsed user sys maxrss_kb", $work/NAME.json the run report

start_sim() {
    local name=$1; shift
    mkfifo "$work/$name.in"
    ./target/release/giosg-sim "$@" < "$work/$name.in" > "$work/$name.sim.json" 2> "$work/$name.err" &
    eval "${name}_PID=$!"
    exec {fd}>"$work/$name.in"
    eval "${name}_FD=$fd"
    while [ ! -s "$work/$name.sim.json" ]; do sleep 0.1; done
    read -r BASE ORG TOKEN MSGS < <(python3 -c "import json; d=json.load(open('$work/$name.sim.json')); print(d['base_url'], d['organization_id'], d['token'], d['messages'])")
}

stop_sim() {
    local name=$1 fd pid
    fd=$(eval echo "\$${name}_FD"); pid=$(eval echo "\$${name}_PID")
    exec {fd}>&-
    wait "$pid" 2>/dev/null || true
}

write_pipeline() {
    local file=$1 out=$2 extra=${3:-}
    cat > "$file" <<TOML
name = "bench"
[source]
plugin = "giosg"
base_url = "$BASE"
organization_id = "$ORG"
token = "\${BENCH_TOKEN}"
$extra
[[sinks]]
plugin = "parquet"
path = "$out"
[state]
path = "$out.state"
TOML
}

timed_run() {
    local name=$1 file=$2
    BENCH_TOKEN=$TOKEN /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" \
        ./target/release/pipe -q run "$file" --report "$work/$name.json" || echo "($name: pipe exited $?)"
}
