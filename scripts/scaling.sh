#!/usr/bin/env bash
# scaling.sh: the same scenarios against ringmq at 1, 2, 4, ... shards, started fresh for every
# run, and one table: delivered msg/s, lost, broker CPU seconds, msg/s per broker CPU second,
# peak broker RSS. Broker and harness share the CPUs given (default: all), as a user's
# machine would; on a machine with many cores give them separate lists.
#
# Scenarios (ringmq-bench):
#   p2p     QoS 1, 500 pairs, window 16, 64-byte payloads
#   fanin   QoS 1, 100 publishers -> 1 subscriber, window 16, 64-byte payloads
#   fanout  QoS 0, 1 publisher -> 1000 subscribers, as fast as the socket takes
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<EOF
Usage: $(basename "$0") [--shards LIST] [--scenarios LIST] [--duration SECS]
                        [--broker-cpus LIST] [--harness-cpus LIST] [--port PORT] [--help]

  --shards L         comma-separated shard counts (default: 1,2,4,... up to twice the CPUs)
  --scenarios L      subset of p2p,fanin,fanout (default all)
  --duration S       seconds of publishing per run (default 10)
  --broker-cpus L    taskset list for the broker (default: every CPU)
  --harness-cpus L   taskset list for ringmq-bench (default: every CPU)
  --port P           first port (default 18940); every run takes the next one

Environment: RINGMQ (broker binary), BENCH (ringmq-bench binary); default target/release/.
EOF
}

NCPU=$(nproc)
SHARDS=""
SCENARIOS="p2p,fanin,fanout"
DURATION=10
BROKER_CPUS="0-$((NCPU - 1))"
HARNESS_CPUS="0-$((NCPU - 1))"
PORT=18940
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) SHARDS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --broker-cpus) BROKER_CPUS=$2; shift 2 ;;
    --harness-cpus) HARNESS_CPUS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$SHARDS" ]; then
  n=1; SHARDS=""
  while [ "$n" -le $((NCPU * 2)) ]; do SHARDS="${SHARDS:+$SHARDS,}$n"; n=$((n * 2)); done
fi
RINGMQ=${RINGMQ:-$ROOT/target/release/ringmq}
BENCH=${BENCH:-$ROOT/target/release/ringmq-bench}
for b in "$RINGMQ" "$BENCH"; do
  [ -x "$b" ] || { echo "missing $b: cargo build --release -p ringmq -p ringmq-bench" >&2; exit 1; }
done

args_of() {
  case "$1" in
    p2p) echo "p2p -c 500 -q 1 -I 0 --inflight 16 -s 64 -R 5000" ;;
    fanin) echo "fanin -c 100 -q 1 -I 0 --inflight 16 -s 64 -R 5000" ;;
    fanout) echo "fanout -c 1000 -q 0 -I 0 -s 64 -R 5000" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

TMP=$(mktemp -d)
BP=""
trap '[ -n "$BP" ] && kill "$BP" 2>/dev/null; rm -rf "$TMP"' EXIT
echo "| scenario | shards | delivered msg/s | lost | broker CPU s | msg/s per CPU s | peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
IFS=, read -ra SCEN <<<"$SCENARIOS"
IFS=, read -ra COUNTS <<<"$SHARDS"
for s in "${SCEN[@]}"; do
  for n in "${COUNTS[@]}"; do
    PORT=$((PORT + 1))
    taskset -c "$BROKER_CPUS" "$RINGMQ" --listen "127.0.0.1:$PORT" --shards "$n" >"$TMP/broker.log" 2>&1 &
    BP=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
      sleep 0.1
    done
    t0=$(awk '{print $14 + $15}' "/proc/$BP/stat")
    # shellcheck disable=SC2046
    taskset -c "$HARNESS_CPUS" "$BENCH" $(args_of "$s") -p "$PORT" --duration "$DURATION" --json \
      >"$TMP/out.json" 2>"$TMP/bench.log" || true
    t1=$(awk '{print $14 + $15}' "/proc/$BP/stat")
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$BP/status")
    kill "$BP"; wait "$BP" 2>/dev/null || true; BP=""
    python3 - "$TMP/out.json" "$s" "$n" "$t0" "$t1" "$rss" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
path, scen, n, t0, t1, rss, tck = sys.argv[1:]
try:
    m = json.load(open(path))["messages"]
except Exception as e:
    print(f"| {scen} | {n} | run failed ({e}) | | | | |")
    sys.exit(0)
cpu = (float(t1) - float(t0)) / float(tck)
rate = m["receive_rate"]
per_cpu = m["received"] / cpu if cpu > 0 else 0
print(f"| {scen} | {n} | {rate:,.0f} | {m['lost']:,} | {cpu:.1f} | {per_cpu:,.0f} | {int(rss) / 1024:.0f} |")
EOF
  done
done
