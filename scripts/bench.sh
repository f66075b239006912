#!/usr/bin/env bash
# Load scenarios of docs/PERFORMANCE.md, run with the load tool
# (src/bin/mesero-bench) against a release build.
#
#   scripts/bench.sh SCENARIO...    # one or more of the names below
#   scripts/bench.sh all            # every scenario, unattended, short durations
#
# Scenarios (one per row of the PERFORMANCE.md table):
#   idle        dev config, no clients: RSS and CPU
#   sse5000     5,000 SSE clients, 5 changes/s
#   ws5000      5,000 WebSocket clients, 5 changes/s
#   mixed9800   4,900 SSE + 4,900 WebSocket, 5 changes/s
#   c20         20 clients (10+10), 200 changes/s, 1 core
#   c200        200 clients (100+100), 200 changes/s, 1 core
#   c1000       1,000 clients (500+500), 100 changes/s, 1 core
#   c2000       2,000 clients (1,000+1,000), 200 changes/s
#   stalled     1,000 clients (500+500), 100 changes/s, with 0, 1 and 100 stalled
#   broker      embedded broker vs Mosquitto, QoS 0, 4 pub / 4 sub, 2,000 msg/s
#   broker-max  same, publishers as fast as they can (unpinned, then 1 core)
#   fanout      2 publishers -> 2,000 subscribers, 20 msg/s, 256 B
#   ingest      5,000 readings/s from 200 MQTT nodes
#   crash       50 x kill -9 under load
#
# Method: the daemon (or broker) is started fresh for every run on a new
# database under $BENCH_DIR; for the "1 core" rows it is pinned with
# `taskset -c 0` and the tool with `taskset -c 1`, otherwise both float
# over all cores. Every scenario runs $RUNS times (default 3); the summary
# (results/summary.md, from scripts/bench-summary.py) takes the median.
#
# Environment knobs:
#   RUNS=3          runs per scenario (crash runs once: it is a check, not a timing)
#   DURATION=10     seconds measured per run (after WARMUP=2)
#   INGEST_S=60     seconds of the ingest scenario
#   ROUNDS=50       kill -9 rounds of the crash scenario
#   BENCH_DIR       where databases, logs and results go (default target/bench)
#   NO_BUILD=1      use the binaries already in target/release
# `all` sets DURATION=4 WARMUP=1 INGEST_S=20 unless given, so that it ends
# within 12 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 1 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
SCENARIOS=("$@")
if [[ ${SCENARIOS[0]} == all ]]; then
  SCENARIOS=(idle sse5000 ws5000 mixed9800 c20 c200 c1000 c2000 stalled broker broker-max fanout ingest crash)
  DURATION=${DURATION:-4}
  WARMUP=${WARMUP:-1}
  INGEST_S=${INGEST_S:-20}
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
INGEST_S=${INGEST_S:-60}
ROUNDS=${ROUNDS:-50}
BENCH_DIR=${BENCH_DIR:-$PWD/target/bench}
RESULTS=$BENCH_DIR/results
MESERO=$PWD/target/release/mesero
BENCH=$PWD/target/release/mesero-bench
# Ports are picked free for every run: a fixed one may be held by another
# daemon on the machine, whose /healthz would then pass for ours.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HTTP_PORT=
MQTT_PORT=
MOSQUITTO_PORT=
mkdir -p "$RESULTS"

# Thousands of sockets on each side.
ulimit -n "$(ulimit -Hn)"

if [[ ${NO_BUILD:-0} != 1 ]]; then
  echo "==> cargo build --release --bin mesero --bin mesero-bench" >&2
  cargo build --release --locked --bin mesero --bin mesero-bench >&2
fi

DAEMON_PID=
stop_daemon() {
  if [[ -n $DAEMON_PID ]]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
  fi
}
trap stop_daemon EXIT

# start_mesero PIN [dev]: a fresh database and the bench config (or the
# dev config), the daemon pinned to core 0 when PIN=1.
start_mesero() {
  local pin=$1 kind=${2:-bench} dir=$BENCH_DIR/run
  rm -rf "$dir"; mkdir -p "$dir"
  HTTP_PORT=$(free_port); MQTT_PORT=$(free_port)
  local cmd=("$MESERO" run --config "$dir/mesero.toml")
  [[ $pin == 1 ]] && cmd=(taskset -c 0 "${cmd[@]}")
  if [[ $kind == dev ]]; then
    cp config/mesero.toml "$dir/mesero.toml"
    MESERO_STORAGE_PATH=$dir/mesero.db MESERO_HTTP_LISTEN=127.0.0.1:$HTTP_PORT \
      MESERO_MQTT_LISTEN=127.0.0.1:$MQTT_PORT MESERO_LOG_LEVEL=warn \
      "${cmd[@]}" 2>"$dir/daemon.log" &
  else
    "$BENCH" config --http $HTTP_PORT --mqtt $MQTT_PORT --db "$dir/mesero.db" >"$dir/mesero.toml"
    "${cmd[@]}" 2>"$dir/daemon.log" &
  fi
  DAEMON_PID=$!
  for _ in $(seq 300); do
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
    curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: the daemon did not answer /healthz" >&2; exit 1
}

start_mosquitto() {
  local pin=$1 dir=$BENCH_DIR/mosquitto
  rm -rf "$dir"; mkdir -p "$dir"
  MOSQUITTO_PORT=$(free_port)
  cat >"$dir/mosquitto.conf" <<EOF
listener $MOSQUITTO_PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
persistence false
log_dest none
EOF
  local cmd=(/usr/sbin/mosquitto -c "$dir/mosquitto.conf")
  [[ $pin == 1 ]] && cmd=(taskset -c 0 "${cmd[@]}")
  "${cmd[@]}" &
  DAEMON_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MOSQUITTO_PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "error: mosquitto did not listen" >&2; exit 1
}

# tool PIN NAME ARGS...: one run of the tool, its report in $RESULTS/NAME.json.
tool() {
  local pin=$1 name=$2; shift 2
  local cmd=("$BENCH" --out "$RESULTS/$name" "$@")
  rm -f "$RESULTS/$name.json" "$RESULTS/$name.svg"
  [[ $pin == 1 ]] && cmd=(taskset -c 1 "${cmd[@]}")
  echo "==> $name ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
  local rc=0
  "${cmd[@]}" >/dev/null || rc=$?
  if [[ ! -f $RESULTS/$name.json ]]; then
    echo "warning: $name wrote no report (exit $rc)" >&2
    return 0
  fi
  python3 - "$RESULTS/$name.json" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF'
import json, sys
path, load = sys.argv[1], float(sys.argv[2])
with open(path) as f:
    r = json.load(f)
r["load_1min"] = load
with open(path, "w") as f:
    json.dump(r, f, indent=2)
EOF
  [[ $rc -eq 0 ]] || echo "warning: $name reported a failed check (exit $rc)" >&2
  return 0
}

streams() { # PIN NAME SSE WS RATE [extra args]
  local pin=$1 name=$2 sse=$3 ws=$4 rate=$5; shift 5
  for run in $(seq "$RUNS"); do
    start_mesero "$pin"
    tool "$pin" "$name.$run" streams --url "http://127.0.0.1:$HTTP_PORT" --pid "$DAEMON_PID" \
      --sse "$sse" --ws "$ws" --rate "$rate" --warmup "$WARMUP" --duration "$DURATION" "$@"
    stop_daemon
  done
}

mqtt_pair() { # PIN NAME ARGS...: the same load on mesero, then on mosquitto
  local pin=$1 name=$2; shift 2
  for run in $(seq "$RUNS"); do
    start_mesero "$pin"
    tool "$pin" "$name.mesero.$run" mqtt --broker "127.0.0.1:$MQTT_PORT" --pid "$DAEMON_PID" \
      --warmup "$WARMUP" --duration "$DURATION" "$@"
    stop_daemon
    start_mosquitto "$pin"
    tool "$pin" "$name.mosquitto.$run" mqtt --broker "127.0.0.1:$MOSQUITTO_PORT" --pid "$DAEMON_PID" \
      --warmup "$WARMUP" --duration "$DURATION" "$@"
    stop_daemon
  done
}

started=$SECONDS
for scenario in "${SCENARIOS[@]}"; do
  case $scenario in
    idle)
      for run in $(seq "$RUNS"); do
        start_mesero 0 dev
        tool 0 "idle.$run" streams --url "http://127.0.0.1:$HTTP_PORT" --token dev-staff --pid "$DAEMON_PID" \
          --sse 0 --ws 0 --rate 0 --warmup "$WARMUP" --duration "$DURATION"
        stop_daemon
      done ;;
    sse5000) streams 0 sse5000 5000 0 5 ;;
    ws5000) streams 0 ws5000 0 5000 5 ;;
    mixed9800) streams 0 mixed9800 4900 4900 5 ;;
    c20) streams 1 c20 10 10 200 ;;
    c200) streams 1 c200 100 100 200 ;;
    c1000) streams 1 c1000 500 500 100 ;;
    c2000) streams 0 c2000 1000 1000 200 ;;
    stalled)
      streams 0 stalled0 500 500 100
      streams 0 stalled1 500 499 100 --stalled 1
      streams 0 stalled100 450 450 100 --stalled 100 ;;
    broker) mqtt_pair 0 broker --publishers 4 --subscribers 4 --qos 0 --rate 2000 ;;
    broker-max)
      mqtt_pair 0 broker-max --publishers 4 --subscribers 4 --qos 0 --rate 0
      mqtt_pair 1 broker-max-1core --publishers 4 --subscribers 4 --qos 0 --rate 0 ;;
    fanout) mqtt_pair 0 fanout --publishers 2 --subscribers 2000 --qos 0 --rate 20 --payload 256 ;;
    ingest)
      for run in $(seq "$RUNS"); do
        start_mesero 0
        tool 0 "ingest.$run" ingest --url "http://127.0.0.1:$HTTP_PORT" --broker "127.0.0.1:$MQTT_PORT" \
          --pid "$DAEMON_PID" --rate 5000 --nodes 200 --duration "$INGEST_S" --perf-fsync
        stop_daemon
      done ;;
    crash)
      rm -rf "$BENCH_DIR/crash"
      tool 0 "crash.1" crash-loop --daemon "$MESERO" --rounds "$ROUNDS" --dir "$BENCH_DIR/crash" ;;
    *) echo "error: unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
python3 scripts/bench-summary.py "$RESULTS" | tee "$RESULTS/summary.md"
echo "==> done in $((SECONDS - started)) s; reports in $RESULTS" >&2
