#!/usr/bin/env bash
# Smoke test of a built mesero binary: the dev config on a loopback port
# chosen by the OS, a database in a temporary directory. Checks that
# /healthz answers, that an SSE client gets the event of a staff PUT, and
# that SIGTERM makes it exit 0 within 5 s (SPEC §6).
#
#   scripts/smoke.sh target/release/mesero
#   scripts/smoke.sh target/cross/aarch64-unknown-linux-gnu/release/mesero \
#       qemu-aarch64 -L /usr/aarch64-linux-gnu            # a foreign binary
#
# Needs curl. Bounded waits only: every step fails after its timeout.
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 BINARY [RUNNER...]" >&2; exit 2; }
BIN=$1; shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STOP_BUDGET_MS=5000

work=$(mktemp -d)
pid=""; sse=""
cleanup() {
  [[ -z $sse ]] || kill "$sse" 2>/dev/null || true
  [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke: FAIL: $*" >&2
  echo "--- daemon log" >&2
  cat "$work/log" >&2 || true
  exit 1
}
# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}
running() { kill -0 "$pid" 2>/dev/null; }

# Not a child of systemd, whatever runs this script.
env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u JOURNAL_STREAM -u MESERO_CONFIG \
  MESERO_HTTP_LISTEN=127.0.0.1:0 MESERO_MQTT_LISTEN=127.0.0.1:0 \
  MESERO_STORAGE_PATH="$work/mesero.db" RUST_LOG=info \
  "$@" "$BIN" run --config "$ROOT/config/mesero.toml" 2>"$work/log" &
pid=$!

wait_for 60 grep -q 'http listening' "$work/log" || fail "no 'http listening' line within 60 s"
addr=$(grep -o 'addr=[0-9.:]*' "$work/log" | head -n1 | cut -d= -f2)
base="http://$addr"

health=$(curl -fsS --max-time 10 "$base/healthz") || fail "/healthz did not answer"
[[ $health == *'"ok"'* ]] || fail "/healthz said: $health"

curl -sSN --max-time 60 "$base/api/v1/stream" >"$work/sse" 2>/dev/null &
sse=$!
wait_for 20 grep -q '^event: snapshot' "$work/sse" || fail "no SSE snapshot"

# "dirty" is set only by staff (sensors never do with bussing off), so the
# PUT changes the table whatever simulated sensors did meanwhile.
put=$(curl -fsS --max-time 10 -X PUT \
  -H 'Authorization: Bearer dev-staff' -H 'content-type: application/json' \
  -d '{"state":"dirty"}' "$base/api/v1/tables/4/state") || fail "PUT failed"
seq=$(grep -o '"seq":[0-9]*' <<<"$put" | head -n1 | cut -d: -f2)
[[ -n $seq ]] || fail "PUT answered without a seq: $put"
wait_for 20 grep -qx "id: $seq" "$work/sse" || fail "SSE client did not get event $seq"
grep -q '^event: table.state' "$work/sse" || fail "event $seq is not a table.state"

started=$(date +%s%N)
kill -TERM "$pid"
deadline=$((SECONDS + 10))
while running && ((SECONDS < deadline)); do sleep 0.02; done
took_ms=$((($(date +%s%N) - started) / 1000000))
running && fail "still running ${took_ms} ms after SIGTERM"
rc=0; wait "$pid" || rc=$?
pid=""
((rc == 0)) || fail "exit status $rc after SIGTERM"
((took_ms < STOP_BUDGET_MS)) || fail "SIGTERM -> exit took ${took_ms} ms (budget ${STOP_BUDGET_MS} ms)"

echo "smoke: ok: $BIN${*:+ (under $*)}: /healthz, SSE got event $seq, SIGTERM -> exit 0 in ${took_ms} ms"
