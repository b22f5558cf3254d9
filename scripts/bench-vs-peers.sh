#!/usr/bin/env bash
# bench-vs-peers.sh: the same scenarios against ringmq, Mosquitto and any broker given by a
# start command, each broker pinned to the same CPUs (taskset) and started fresh for every
# scenario, the harness pinned to the other CPUs. Prints a side-by-side markdown table with
# ratios against Mosquitto; --record appends it, with the command and date, to
# docs/benchmarks.md.
#
# Scenarios (ringmq-bench):
#   p2p     QoS 1, 500 pairs, closed loop (-I 0, --inflight 2): as fast as the broker acks
#   p2p-w20 the same with 20 unacknowledged messages per publisher, the default window of
#           common clients (paho-mqtt's max_inflight_messages; Mosquitto's max_inflight_messages)
#   fanin   QoS 1, 100 publishers -> 1 subscriber, 10,000 msg/s offered (-I 10)
#   fanout  QoS 0, 1 publisher -> 1000 subscribers at 100 msg/s (100,000 deliveries/s offered)
#   shared  QoS 1, 1000 publishers -> 5 members of $share/g/..., 10,000 msg/s offered (-I 100)
#   fanin-max, fanout-max, shared-max: the same shapes with no publish interval (closed loop
#           for QoS 1, as fast as the socket takes for QoS 0): the most each broker delivers;
#           what a broker acknowledges but cannot deliver shows as lost
# p2p measures the most a broker moves (each pair's subscriber keeps up, so nothing queues
# but the window); the others offer a fixed load, since a closed loop into one slow consumer
# only measures how much a broker acknowledges and then drops.
#   fanin-w16, fanin1000-w16, fanin-q2-w16: closed-loop fan-in with 16 unacknowledged
#           messages per publisher and 64-byte payloads (100 -> 1 QoS 1, 1000 -> 1 QoS 1,
#           100 -> 1 QoS 2): the load under which a broker either pushes back on publishers
#           or acknowledges messages and then drops them (shown as lost)
#   idle    15,000 idle connections: broker RSS per connection and connect rate (million.sh)
#   handshake  5,000 connections opened as fast as the broker takes them (at most 1,000
#           waiting per harness worker): connections per second; over TLS each is a full
#           handshake (no resumption) and a CONNECT
# --transport tls|ws|wss runs every scenario over TLS, WebSocket or both: the script makes a
# CA and a server certificate (openssl) in its temporary directory, starts each broker with
# such a listener on the port ({cert}, {key} in commands and --broker conf files; {port2} is
# a spare port for a broker's plain listener) and gives the harness --tls --cafile / --ws.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORIG_ARGS=("$@")

usage() {
  cat <<EOF
Usage: $(basename "$0") [--broker NAME='START COMMAND with {port}']... [--no-ringmq]
                        [--no-mosquitto] [--broker-cpus LIST] [--harness-cpus LIST]
                        [--duration SECS] [--scenarios LIST] [--port PORT] [--record] [--help]
                        [--transport tcp|tls|ws|wss]

  --broker NAME=CMD  another broker; {port} is replaced by the port, {ncpus} by the number of
                     broker CPUs, {conf:FILE} by a copy of FILE with its {port} replaced.
                     CMD must stay in the foreground. Repeatable.
  --no-ringmq        leave ringmq out (it is skipped anyway when its binary is absent or
                     fails to start)
  --no-mosquitto     leave Mosquitto out
  --broker-cpus L    CPUs for the broker (default 0)
  --harness-cpus L   CPUs for ringmq-bench (default: every other CPU)
  --duration S       seconds of publishing per scenario (default 10)
  --scenarios L      comma-separated subset of p2p,p2p-w20,fanin,fanout,shared,fanin-max,fanout-max,
                     shared-max,fanin-w16,fanin1000-w16,fanin-q2-w16,idle,handshake (default all
                     but handshake)
  --port P           first broker port (default 18840); each broker start takes the next
                     one, so sockets in TIME_WAIT from the previous run never block a bind
  --bench-args A     extra ringmq-bench arguments for every scenario, e.g. "-V 5"
  --transport T      tcp (default), tls, ws or wss: the listener every broker is measured on
  --record           append the table to docs/benchmarks.md (BENCHMARKS_MD= overrides the path)

Environment: RINGMQ (broker binary), BENCH (ringmq-bench binary); default target/release/.
EOF
}

BROKERS=()     # "name=command"
WANT_RINGMQ=1
WANT_MOSQUITTO=1
BROKER_CPUS=0
HARNESS_CPUS=""
DURATION=10
SCENARIOS="p2p,p2p-w20,fanin,fanout,shared,fanin-max,fanout-max,shared-max,fanin-w16,fanin1000-w16,fanin-q2-w16,idle"
PORT=18840
RECORD=0
BENCH_ARGS=""
TRANSPORT=tcp
while [ $# -gt 0 ]; do
  case "$1" in
    --broker) BROKERS+=("$2"); shift ;;
    --broker=*) BROKERS+=("${1#*=}") ;;
    --no-ringmq) WANT_RINGMQ=0 ;;
    --no-mosquitto) WANT_MOSQUITTO=0 ;;
    --broker-cpus) BROKER_CPUS=$2; shift ;;
    --harness-cpus) HARNESS_CPUS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --port) PORT=$2; shift ;;
    --record) RECORD=1 ;;
    --bench-args) BENCH_ARGS=$2; shift ;;
    --transport) TRANSPORT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-vs-peers.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "== $*" >&2; }
case "$TRANSPORT" in
  tcp|tls|ws|wss) ;;
  *) echo "bench-vs-peers.sh: --transport must be tcp, tls, ws or wss, not '$TRANSPORT'" >&2; exit 2 ;;
esac

cpu_list() { # expand "0,2-3" to "0 2 3"
  python3 -c "
import sys
out=[]
for p in sys.argv[1].split(','):
    a,_,b=p.partition('-'); out+=range(int(a), int(b or a)+1)
print(' '.join(map(str,out)))" "$1"
}
NCPUS_BROKER=$(cpu_list "$BROKER_CPUS" | wc -w)
if [ -z "$HARNESS_CPUS" ]; then
  HARNESS_CPUS=$(python3 -c "
import os
mine=set(map(int, '$(cpu_list "$BROKER_CPUS")'.split()))
rest=[c for c in sorted(os.sched_getaffinity(0)) if c not in mine]
print(','.join(map(str, rest)))")
  [ -n "$HARNESS_CPUS" ] || { echo "bench-vs-peers.sh: no CPU left for the harness; give --harness-cpus" >&2; exit 2; }
fi
NCPUS_HARNESS=$(cpu_list "$HARNESS_CPUS" | wc -w)

find_bin() {
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
export BENCH

# --- the brokers -------------------------------------------------------------------------------
LIST=()   # "name=command", in column order
if [ $WANT_RINGMQ = 1 ]; then
  R=$(find_bin ringmq "${RINGMQ:-}")
  if [ -z "$R" ]; then
    say "ringmq: skipped, no binary (cargo build --release -p ringmq, or set RINGMQ=)"
  else
    case "$TRANSPORT" in
      tcp) LIST+=("ringmq=$R --listen 127.0.0.1:{port} --shards {ncpus}") ;;
      tls) LIST+=("ringmq=$R --listen 127.0.0.1:{port2} --tls-listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key} --shards {ncpus}") ;;
      ws) LIST+=("ringmq=$R --listen 127.0.0.1:{port2} --ws-listen 127.0.0.1:{port} --shards {ncpus}") ;;
      wss) LIST+=("ringmq=$R --listen 127.0.0.1:{port2} --config {conf:$ROOT/scripts/peers/ringmq-wss.toml} --shards {ncpus}") ;;
    esac
  fi
fi
if [ $WANT_MOSQUITTO = 1 ]; then
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    LIST+=("mosquitto=mosquitto")
  else
    say "mosquitto: skipped, not installed (apt-get install mosquitto)"
  fi
fi
for b in "${BROKERS[@]}"; do
  [[ $b == *=* ]] || { echo "bench-vs-peers.sh: --broker wants NAME='command', got '$b'" >&2; exit 2; }
  LIST+=("$b")
done
[ ${#LIST[@]} -gt 0 ] || { echo "bench-vs-peers.sh: no broker to run" >&2; exit 1; }

PORT_BASE=$PORT
TMP=$(mktemp -d /tmp/bench-vs-peers.XXXXXX)
CERT=$TMP/server.pem KEY=$TMP/server.key
case "$TRANSPORT" in
  tls) BENCH_ARGS="$BENCH_ARGS --tls --cafile $TMP/ca.pem" ;;
  ws) BENCH_ARGS="$BENCH_ARGS --ws" ;;
  wss) BENCH_ARGS="$BENCH_ARGS --tls --ws --cafile $TMP/ca.pem" ;;
esac
if [ "$TRANSPORT" = tls ] || [ "$TRANSPORT" = wss ]; then
  say "making a CA and a server certificate (P-256) in $TMP"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/ca.key" \
    -out "$TMP/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$KEY" \
    -out "$TMP/server.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TMP/server.ext"
  openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
    -out "$CERT" -days 2 -extfile "$TMP/server.ext" 2>/dev/null
  # Mosquitto started as root reads them as the user mosquitto.
  chmod a+rx "$TMP"; chmod a+r "$CERT" "$KEY"
fi
BPID=""
stop_broker() {
  if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
    kill -TERM "$BPID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
  fi
  BPID=""
}
trap 'stop_broker; rm -rf "$TMP"' EXIT

expand_cmd() { # command -> runnable command line
  local cmd=$1 src dst
  while [[ $cmd =~ \{conf:([^}]*)\} ]]; do
    src=${BASH_REMATCH[1]}
    dst="$TMP/$PORT-$(basename "$src")"
    sed "s/{port}/$PORT/g; s|{cert}|$CERT|g; s|{key}|$KEY|g" "$src" >"$dst"
    cmd=${cmd/"${BASH_REMATCH[0]}"/$dst}
  done
  if [ "$cmd" = mosquitto ]; then
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n' "$PORT" >"$TMP/mosquitto.conf"
    case "$TRANSPORT" in
      tls) printf 'certfile %s\nkeyfile %s\n' "$CERT" "$KEY" >>"$TMP/mosquitto.conf" ;;
      ws|wss) printf 'protocol websockets\n' >>"$TMP/mosquitto.conf" ;;
    esac
    [ "$TRANSPORT" = wss ] && printf 'certfile %s\nkeyfile %s\n' "$CERT" "$KEY" >>"$TMP/mosquitto.conf"
    cmd="$(command -v mosquitto || echo /usr/sbin/mosquitto) -c $TMP/mosquitto.conf"
  fi
  cmd=${cmd//\{port\}/$PORT}
  cmd=${cmd//\{port2\}/$((PORT + 10000))}
  cmd=${cmd//\{cert\}/$CERT}
  cmd=${cmd//\{key\}/$KEY}
  echo "${cmd//\{ncpus\}/$NCPUS_BROKER}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
# CPU time (user + system, clock ticks) the running broker has used so far.
broker_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$BPID/stat" 2>/dev/null || echo 0; }

RUN=0
next_port() { PORT=$((PORT_BASE + RUN)); RUN=$((RUN + 1)); }

start_broker() { # name command -> 0 when listening
  local name=$1 cmd
  next_port
  cmd=$(expand_cmd "$2")
  # A broker's sockets can outlive its process briefly (io_uring tears its files down
  # asynchronously), so give the previous one a moment before calling the port taken.
  for _ in $(seq 100); do port_open || break; sleep 0.1; done
  if port_open; then
    echo "bench-vs-peers.sh: port $PORT is already in use; give --port" >&2
    exit 1
  fi
  taskset -c "$BROKER_CPUS" bash -c "exec $cmd" >"$TMP/$name.log" 2>&1 &
  BPID=$!
  for _ in $(seq 100); do
    port_open && return 0
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.1
  done
  say "$name: did not start listening on port $PORT within 10 s; skipped. Its output:"
  tail -5 "$TMP/$name.log" >&2 || true
  stop_broker
  return 1
}

scenario_args() {
  case "$1" in
    p2p) echo "p2p -c 500 -q 1 -I 0 --inflight 2 -R 5000" ;;
    p2p-w20) echo "p2p -c 500 -q 1 -I 0 --inflight 20 -R 5000" ;;
    fanin) echo "fanin -c 100 -q 1 -I 10 -R 5000" ;;
    fanout) echo "fanout -c 1000 -q 0 -I 10 -R 5000" ;;
    shared) echo "shared -c 1000 --subs 5 -q 1 -I 100 -R 5000" ;;
    fanin-max) echo "fanin -c 100 -q 1 -I 0 --inflight 2 -R 5000" ;;
    fanout-max) echo "fanout -c 1000 -q 0 -I 0 -R 5000" ;;
    shared-max) echo "shared -c 1000 --subs 5 -q 1 -I 0 --inflight 1 -R 5000" ;;
    fanin-w16) echo "fanin -c 100 -q 1 -I 0 --inflight 16 -s 64 -R 5000" ;;
    fanin1000-w16) echo "fanin -c 1000 -q 1 -I 0 --inflight 16 -s 64 -R 5000" ;;
    fanin-q2-w16) echo "fanin -c 100 -q 2 -I 0 --inflight 16 -s 64 -R 5000" ;;
    handshake) echo "conn -c 5000 -R 0 --hold 1" ;;
  esac
}

NAMES=()
for entry in "${LIST[@]}"; do
  name=${entry%%=*}
  cmd=${entry#*=}
  ok=1
  for sc in ${SCENARIOS//,/ }; do
    if [ "$sc" = idle ]; then
      next_port
      say "$name: idle 15000 (million.sh)"
      if "$ROOT/scripts/million.sh" -n 15000 -r 5000 --hold 3 --port "$PORT" --no-check --kv --bench-args "$BENCH_ARGS" \
          --name "$name" --cpus "$BROKER_CPUS" --broker "$(expand_cmd "$cmd")" >"$TMP/$name.idle.out" 2>"$TMP/$name.idle.err"; then
        grep '^kv ' "$TMP/$name.idle.out" >"$TMP/$name.idle.kv"
      else
        say "$name: idle run failed:"; tail -5 "$TMP/$name.idle.err" >&2
      fi
      continue
    fi
    args=$(scenario_args "$sc")
    [ -n "$args" ] || { echo "bench-vs-peers.sh: unknown scenario '$sc'" >&2; exit 2; }
    args="$args $BENCH_ARGS"
    start_broker "$name" "$cmd" || { ok=0; break; }
    sleep 0.3
    say "$name: $sc ($args${DURATION:+ --duration $DURATION})"
    # shellcheck disable=SC2086
    dur=(--duration "$DURATION")
    [ "$sc" = handshake ] && dur=()   # conn mode ends when every connection is up and held
    cpu0=$(broker_cpu_ticks)
    if ! taskset -c "$HARNESS_CPUS" "$BENCH" $args -p "$PORT" "${dur[@]}" --json >"$TMP/$name.$sc.json" 2>"$TMP/$name.$sc.err"; then
      say "$name: $sc failed:"; tail -5 "$TMP/$name.$sc.err" >&2
      rm -f "$TMP/$name.$sc.json"
    fi
    echo $(( $(broker_cpu_ticks) - cpu0 )) $(getconf CLK_TCK) >"$TMP/$name.$sc.cpu"
    stop_broker
  done
  [ $ok = 1 ] && NAMES+=("$name")
done
[ ${#NAMES[@]} -gt 0 ] || { echo "bench-vs-peers.sh: no broker ran" >&2; exit 1; }

# --- the table -----------------------------------------------------------------------------------
TABLE=$(python3 - "$TMP" "$SCENARIOS" "$NCPUS_HARNESS" "$DURATION" "${NAMES[@]}" <<'PY'
import json, os, sys
tmp, scenarios, ncpus_h, duration, names = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
ref = 'mosquitto' if 'mosquitto' in names else names[0]
others = [n for n in names if n != ref]
titles = {
    'p2p': 'p2p QoS1 500 pairs, closed loop', 'p2p-w20': 'p2p QoS1 500 pairs, window 20, closed loop',
    'fanin': 'fanin QoS1 100->1 @10k/s',
    'fanout': 'fanout QoS0 1->1000 @100/s', 'shared': 'shared QoS1 1000->5 @10k/s',
    'idle': 'idle 15,000 conns', 'handshake': 'connect 5,000 as fast as taken',
    'fanin-max': 'fanin QoS1 100->1, closed loop', 'fanout-max': 'fanout QoS0 1->1000, as fast as sent',
    'shared-max': 'shared QoS1 1000->5, closed loop',
    'fanin-w16': 'fanin QoS1 100->1, window 16, 64 B', 'fanin1000-w16': 'fanin QoS1 1000->1, window 16, 64 B',
    'fanin-q2-w16': 'fanin QoS2 100->1, window 16, 64 B',
}
def load(n, sc):
    if sc == 'idle':
        p = f'{tmp}/{n}.idle.kv'
        if not os.path.exists(p): return None
        return dict(kv.split('=', 1) for kv in open(p).read().split()[1:])
    p = f'{tmp}/{n}.{sc}.json'
    if not os.path.exists(p): return None
    r = json.load(open(p))
    c = f'{tmp}/{n}.{sc}.cpu'
    if os.path.exists(c):
        ticks, hz = map(int, open(c).read().split())
        r['broker_cpu_s'] = ticks / hz
    return r
def metrics(sc, r):
    if r is None: return None
    if sc == 'idle':
        return [('bytes/conn (lower is better)', float(r['bytes_per_conn'])),
                ('conn/s', float(r['conn_rate']))]
    if sc == 'handshake':
        c = r['connections']
        per = r['broker_cpu_s'] * 1e6 / c['connected'] if c['connected'] and 'broker_cpu_s' in r else None
        return [('conn/s', c['connect_rate']), ('connect p99 ms', c['connect_us']['p99'] / 1000),
                ('broker CPU us/conn (lower is better)', per), ('failed', c['failed'] or 0)]
    m, l = r['messages'], r['latency_us']
    return [('received msg/s', m['receive_rate']), ('latency p50 ms', l['p50'] / 1000),
            ('latency p99 ms', l['p99'] / 1000), ('acked', m['acked'] or 0),
            ('broker CPU ns/msg (lower is better)',
             r['broker_cpu_s'] * 1e9 / m['received'] if m['received'] and 'broker_cpu_s' in r else None),
            ('lost', m['lost'] or 0), ('duplicates', m['duplicates'] or 0)]
def fmt(v):
    if v is None: return '-'
    if isinstance(v, float) and v != int(v) and abs(v) < 100: return f'{v:.2f}'
    return f'{int(round(v)):,}'
head = ['scenario', 'metric'] + names + [f'{o} / {ref}' for o in others]
rows, notes = [], []
for sc in scenarios:
    per = {n: metrics(sc, load(n, sc)) for n in names}
    keys = next((m for m in per.values() if m), None)
    if keys is None: continue
    for i, (label, _) in enumerate(keys):
        vals = {n: (per[n][i][1] if per[n] else None) for n in names}
        ratios = []
        for o in others:
            a, b = vals[o], vals[ref]
            ratios.append(f'{a / b:.3g}x' if a is not None and b and label not in ('lost', 'acked', 'duplicates', 'failed') else '')
        rows.append([titles.get(sc, sc) if i == 0 else '', label] + [fmt(vals[n]) for n in names] + ratios)
    for n in names:
        r = load(n, sc)
        if sc not in ('idle', 'handshake') and r:
            # At least the run's --duration: a QoS 0 publisher stalled by a broker that stops
            # reading reports a short publish_s, which made the share read as thousands of %.
            h = r['harness']; wall = r['connections']['connect_phase_s'] + max(r['messages']['publish_s'], duration)
            busy = (h['cpu_user_s'] + h['cpu_sys_s']) / wall / ncpus_h if wall > 0 else 0
            if busy > 0.8:
                notes.append(f'- {n} / {sc}: the harness used {busy:.0%} of its {ncpus_h} CPU(s); that result may be harness-bound.')
out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
out += ['| ' + ' | '.join(r) + ' |' for r in rows]
print('\n'.join(out + ([''] + notes if notes else [])))
PY
)
echo
echo "$TABLE"

if [ $RECORD = 1 ]; then
  MD=${BENCHMARKS_MD:-$ROOT/docs/benchmarks.md}
  [ -f "$MD" ] || printf '# Benchmarks\n\nRecorded runs, newest last. Each section says how to reproduce it.\n' >"$MD"
  CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  {
    echo
    echo "## bench-vs-peers, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Host: $(nproc) CPUs ($CPU_MODEL), Linux $(uname -r). Broker on CPU $BROKER_CPUS, harness on CPU $HARNESS_CPUS; ${DURATION} s per scenario; each broker started fresh per scenario; transport $TRANSPORT."
    echo
    echo "Command: \`scripts/bench-vs-peers.sh ${ORIG_ARGS[*]}\`"
    echo
    echo "$TABLE"
  } >>"$MD"
  say "appended to $MD"
fi
