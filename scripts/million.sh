#!/usr/bin/env bash
# million.sh: the million-connection run. Checks the host (kernel-tuning/check.sh N), starts
# ringmq (or any broker given by a start command), opens N idle MQTT connections with
# ringmq-bench from many source addresses at rate R, holds them, samples the broker's RSS and
# CPU before and after, and reports bytes per connection and the connect rate, ending with one
# markdown table row for docs/benchmarks.md.
#
# For another broker N is capped by its open-file limit (read from /proc/PID/limits), with a
# message saying so. ringmq keeps connections in io_uring tables of direct descriptors, not
# process fds, so its limit caps only the size of one table and N is not capped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<EOF
Usage: $(basename "$0") [-n N] [-r RATE] [--hold SECS] [--port PORT] [--shards K]
                  [--broker 'START COMMAND with {port}'] [--name NAME] [--cpus LIST]
                  [--ifaddr LIST] [--no-check] [--kv] [--save] [--help]

  -n N           connections to open (default 1000000; for another broker capped by its fd
                 limit)
  -r RATE        connections per second (default 10000)
  --hold SECS    seconds to hold them before measuring the end (default 10)
  --port PORT    broker port (default 18830)
  --shards K     ringmq shards (default: its own default, one per CPU)
  --broker CMD   start another broker instead of ringmq; {port} is replaced by the port.
                 The command must stay in the foreground (it is exec'd, its PID is measured).
                 'mosquitto' alone starts Mosquitto with a temporary config (listener on
                 the port, anonymous, max_connections -1)
  --name NAME    name shown for --broker (default: first word of CMD)
  --cpus LIST    pin the broker with taskset -c LIST (the harness gets the other CPUs)
  --ifaddr LIST  source addresses for the harness (default: enough 127.0.0.x, at least 4)
  --no-check     do not run kernel-tuning/check.sh
  --kv           also print the results as key=value lines (for bench-vs-peers.sh)
  --bench-args A extra ringmq-bench arguments, e.g. "--tls" (connections over TLS)
  --save         after a ringmq run, write kernel-tuning/measured.env (BYTES_PER_CONN=...),
                 which kernel-tuning/check.sh reads for its memory estimate

Environment: RINGMQ (broker binary), BENCH (ringmq-bench binary); default target/release/.
EOF
}

N=1000000
RATE=10000
HOLD=10
PORT=18830
SHARDS=""
BROKER_CMD=""
NAME=""
CPUS=""
IFADDR=""
CHECK=1
KV=0
SAVE=0
BENCH_ARGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift ;;
    -r) RATE=$2; shift ;;
    --hold) HOLD=$2; shift ;;
    --port) PORT=$2; shift ;;
    --shards) SHARDS=$2; shift ;;
    --broker) BROKER_CMD=$2; shift ;;
    --name) NAME=$2; shift ;;
    --cpus) CPUS=$2; shift ;;
    --ifaddr) IFADDR=$2; shift ;;
    --no-check) CHECK=0 ;;
    --kv) KV=1 ;;
    --save) SAVE=1 ;;
    --bench-args) BENCH_ARGS=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "million.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || { echo "million.sh: -n must be a positive integer" >&2; exit 2; }
N_ASKED=$N

say() { echo "== $*" >&2; }

find_bin() { # name env-value
  local name=$1 given=${2:-}
  if [ -n "$given" ]; then echo "$given"; return; fi
  for d in "$ROOT/target/release" "${CARGO_TARGET_DIR:-/nonexistent}/release"; do
    if [ -x "$d/$name" ]; then echo "$d/$name"; return; fi
  done
  echo ""
}

BENCH=$(find_bin ringmq-bench "${BENCH:-}")
if [ -z "$BENCH" ]; then
  say "building ringmq-bench (release)"
  (cd "$ROOT" && cargo build --release -q -p ringmq-bench)
  BENCH=$(find_bin ringmq-bench "")
fi

# --- 1. what stops N connections on this host ------------------------------------------------
if [ $CHECK = 1 ]; then
  if [ -x "$ROOT/kernel-tuning/check.sh" ]; then
    say "kernel-tuning/check.sh $N"
    if ! "$ROOT/kernel-tuning/check.sh" "$N" >&2; then
      say "check.sh found blockers for $N connections; going on, capped by what this host allows"
    fi
  else
    say "kernel-tuning/check.sh not present; skipping the host check"
  fi
fi

# --- 2. start the broker ---------------------------------------------------------------------
TMP=$(mktemp -d /tmp/million.XXXXXX)
BPID=""
cleanup() {
  if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
    kill -TERM "$BPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BPID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

USER_BROKER=$BROKER_CMD
if [ "$BROKER_CMD" = mosquitto ]; then
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n' "$PORT" >"$TMP/mosquitto.conf"
  MQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  BROKER_CMD="$MQ -c $TMP/mosquitto.conf"
  NAME=${NAME:-mosquitto}
fi
if [ -z "$BROKER_CMD" ]; then
  RINGMQ_BIN=$(find_bin ringmq "${RINGMQ:-}")
  [ -n "$RINGMQ_BIN" ] || { echo "million.sh: no ringmq binary (cargo build --release -p ringmq, or set RINGMQ=, or give --broker)" >&2; exit 1; }
  BROKER_CMD="$RINGMQ_BIN --listen 127.0.0.1:{port}${SHARDS:+ --shards $SHARDS}"
  NAME=${NAME:-ringmq}
fi
NAME=${NAME:-$(basename "${BROKER_CMD%% *}")}
CMD=${BROKER_CMD//\{port\}/$PORT}
PIN=()
[ -n "$CPUS" ] && PIN=(taskset -c "$CPUS")
say "starting $NAME: $CMD${CPUS:+ (cpus $CPUS)}"
"${PIN[@]}" bash -c "exec $CMD" >"$TMP/broker.log" 2>&1 &
BPID=$!

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
for _ in $(seq 100); do
  port_open && break
  kill -0 "$BPID" 2>/dev/null || { echo "million.sh: $NAME exited at start:" >&2; cat "$TMP/broker.log" >&2; exit 1; }
  sleep 0.1
done
port_open || { echo "million.sh: $NAME is not listening on port $PORT after 10 s" >&2; exit 1; }
sleep 0.5 # let it settle before the baseline sample

# --- 3. cap N by the broker's open-file limit (not ringmq's: see the top) --------------------
LIMIT=$(awk '/^Max open files/ { print $4 }' "/proc/$BPID/limits")
SLACK=100
if [ "$NAME" = ringmq ] && [ -z "$USER_BROKER" ]; then
  say "ringmq holds connections as io_uring direct descriptors: its open-file limit $LIMIT caps one table, not N"
elif [ "$LIMIT" != "unlimited" ] && [ $((N + SLACK)) -gt "$LIMIT" ]; then
  CAP=$((LIMIT - SLACK))
  say "the broker's open-file limit is $LIMIT: N capped from $N to $CAP (raise LimitNOFILE / ulimit -n, see kernel-tuning/, to go further)"
  N=$CAP
fi

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$BPID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$BPID/stat"; }
TCK=$(getconf CLK_TCK)

if [ -z "$IFADDR" ]; then
  A=$(( (N + 24999) / 25000 )); [ $A -lt 4 ] && A=4
  IFADDR="127.0.0.2-127.0.0.$((A + 1))"
  [ $A -gt 250 ] && { echo "million.sh: $N connections need more than 250 source addresses; give --ifaddr" >&2; exit 1; }
fi

RSS0=$(rss_kb)
CPU0=$(cpu_ticks)
say "$NAME pid $BPID RSS $RSS0 kB; opening $N connections at $RATE/s from $IFADDR, holding ${HOLD}s"

# --- 4. open, hold, sample -------------------------------------------------------------------
HPIN=()
if [ -n "$CPUS" ]; then
  OTHER=$(python3 -c "
import os
mine=set()
for part in '$CPUS'.split(','):
    a,_,b=part.partition('-'); mine.update(range(int(a), int(b or a)+1))
rest=[c for c in sorted(os.sched_getaffinity(0)) if c not in mine]
print(','.join(map(str, rest)))")
  [ -n "$OTHER" ] && HPIN=(taskset -c "$OTHER")
fi
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
"${HPIN[@]}" "$BENCH" conn -p "$PORT" -c "$N" -R "$RATE" --hold "$HOLD" --ifaddr "$IFADDR" --progress $BENCH_ARGS --json >"$TMP/bench.json" &
HB=$!
PEAK=$RSS0
while kill -0 $HB 2>/dev/null; do
  r=$(rss_kb 2>/dev/null || echo 0)
  [ "${r:-0}" -gt "$PEAK" ] && PEAK=$r
  sleep 0.5
done
wait $HB || { echo "million.sh: ringmq-bench failed" >&2; exit 1; }
CPU1=$(cpu_ticks)
RSS1=$(rss_kb)

# --- 5. report -------------------------------------------------------------------------------
read -r CONNECTED FAILED RATE_GOT P50 P99 PHASE < <(python3 -c "
import json,sys
r=json.load(open('$TMP/bench.json'))
c=r['connections']; s=c['connect_us']
print(c['connected'], c['failed'], c['connect_rate'], s['p50'], s['p99'], c['connect_phase_s'])")
[ "$CONNECTED" -gt 0 ] || { echo "million.sh: no connection succeeded" >&2; exit 1; }
BPC=$(( (PEAK - RSS0) * 1024 / CONNECTED ))
CPU_S=$(awk -v a="$CPU0" -v b="$CPU1" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')
CPU_US_PER_CONN=$(awk -v a="$CPU0" -v b="$CPU1" -v t="$TCK" -v n="$CONNECTED" 'BEGIN { printf "%.1f", (b - a) / t * 1e6 / n }')
KB=$(awk -v b="$BPC" 'BEGIN { printf "%.2f", b / 1024 }')
DATE=$(date -u +%Y-%m-%d)
HOST="$(nproc) CPUs, $(uname -r)"

echo "$NAME: $CONNECTED of $N connections ($FAILED failed) from $IFADDR in ${PHASE}s = $RATE_GOT conn/s"
echo "  broker RSS $RSS0 kB before, $PEAK kB peak, $RSS1 kB after the harness left"
echo "  $BPC bytes ($KB KB) per connection; broker CPU $CPU_S s = $CPU_US_PER_CONN us per connection"
echo "  connect latency p50 $(awk -v u="$P50" 'BEGIN{printf "%.2f", u/1000}') ms, p99 $(awk -v u="$P99" 'BEGIN{printf "%.2f", u/1000}') ms"
echo
echo "| date | broker | host | connections | bytes/conn | conn/s | connect p99 | broker CPU | command |"
echo "|---|---|---|---|---|---|---|---|---|"
# shellcheck disable=SC2016 # the single quotes are literal text inside double quotes
echo "| $DATE | $NAME | $HOST | $CONNECTED | $BPC ($KB KB) | $RATE_GOT | $(awk -v u="$P99" 'BEGIN{printf "%.2f", u/1000}') ms | $CPU_S s | \`scripts/million.sh -n $N_ASKED -r $RATE --hold $HOLD${USER_BROKER:+ --broker '$USER_BROKER'}\` |"
if [ $KV = 1 ]; then
  echo "kv name=$NAME connected=$CONNECTED failed=$FAILED bytes_per_conn=$BPC conn_rate=$RATE_GOT connect_p99_us=$P99 cpu_s=$CPU_S"
fi
if [ $SAVE = 1 ] && [ "$NAME" = ringmq ] && [ -d "$ROOT/kernel-tuning" ]; then
  echo "BYTES_PER_CONN=$BPC" >"$ROOT/kernel-tuning/measured.env"
  say "wrote kernel-tuning/measured.env (BYTES_PER_CONN=$BPC) for check.sh"
fi
