#!/usr/bin/env bash
# check.sh: reports what stops this host from holding N MQTT connections, one line per check
# (OK, WARN or BLOCKER, the value found, the value needed, the fix), and exits non-zero when
# any BLOCKER is found. It only reads: it never changes a limit or a sysctl (tune.sh does).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# fds the broker holds besides connections: listeners per shard, io_uring rings, cross-shard
# eventfds, persistence logs, stdio. A 2-shard broker uses a few dozen; 256 leaves room.
FD_SLACK=256
# Kernel slab memory per idle, accepted TCP socket, measured on Linux 6.18 with
# kernel-tuning/measure_socket_bytes.py: TCP 2364 B + sock_inode_cache 823 B + filp 190 B +
# dentry 190 B + LSM and small allocations ~90 B = 3.66 KB, 3.7-3.8 KB in total over runs of
# 10,000 sockets (the total includes a 126 B epoll item that an io_uring broker does not need).
KERNEL_BYTES_DEFAULT=3700
# The measured floor from the ringmq design notes: a minimal glommio server holding 15,000
# idle connections at 0.82 KB of RSS each.
BYTES_DEFAULT=820
UNIT_REPO=$HERE/systemd/ringmq.service
UNIT_INSTALLED=/etc/systemd/system/ringmq.service

usage() {
  cat <<EOF
Usage: $(basename "$0") N [--bytes-per-conn B] [--kernel-bytes-per-socket K]
                         [--measured FILE] [--remote-clients] [--help]

Reports what stops this host from holding N MQTT connections and exits 1 listing each
BLOCKER with its fix (0 when there is none, 2 on bad usage). WARN lines do not fail.

  N                            connections to hold
  --bytes-per-conn B           broker memory per idle connection in bytes (default: from
                               --measured FILE, else $BYTES_DEFAULT, the design notes' measured floor)
  --kernel-bytes-per-socket K  kernel memory per idle TCP socket (default $KERNEL_BYTES_DEFAULT, measured
                               on Linux 6.18 with measure_socket_bytes.py)
  --measured FILE              file with BYTES_PER_CONN=... (default kernel-tuning/measured.env,
                               written by the million-connection run)
  --remote-clients             the load generator runs on other hosts: skip the ephemeral
                               port check and do not count its sockets here
EOF
}

die_usage() { echo "check.sh: $*" >&2; echo "try: $(basename "$0") --help" >&2; exit 2; }

N=""
BYTES=""
KBYTES=$KERNEL_BYTES_DEFAULT
MEASURED=$HERE/measured.env
LOCAL_GEN=1
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --bytes-per-conn) [ $# -ge 2 ] || die_usage "--bytes-per-conn needs a value"; BYTES=$2; shift ;;
    --bytes-per-conn=*) BYTES=${1#*=} ;;
    --kernel-bytes-per-socket) [ $# -ge 2 ] || die_usage "--kernel-bytes-per-socket needs a value"; KBYTES=$2; shift ;;
    --kernel-bytes-per-socket=*) KBYTES=${1#*=} ;;
    --measured) [ $# -ge 2 ] || die_usage "--measured needs a file"; MEASURED=$2; shift ;;
    --measured=*) MEASURED=${1#*=} ;;
    --remote-clients) LOCAL_GEN=0 ;;
    -*) die_usage "unknown option '$1'" ;;
    *) [ -z "$N" ] || die_usage "only one N, got '$N' and '$1'"; N=$1 ;;
  esac
  shift
done
[ -n "$N" ] || die_usage "missing N, the number of connections"
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "${#1}" -le 12 ] && [ "$1" -gt 0 ]; }
is_count "$N" || die_usage "N must be a positive integer, got '$N'"
is_count "$KBYTES" || die_usage "--kernel-bytes-per-socket must be a positive integer, got '$KBYTES'"

# --- where the broker's bytes per connection come from ------------------------------------------
if [ -n "$BYTES" ]; then
  is_count "$BYTES" || die_usage "--bytes-per-conn must be a positive integer, got '$BYTES'"
  BYTES_FROM="--bytes-per-conn"
elif [ -f "$MEASURED" ]; then
  # read, never source: the file is data
  value() { sed -n "s/^[[:space:]]*$1=//p" "$MEASURED" | tail -n 1 | sed 's/^["'\'']//; s/["'\'']$//'; }
  raw=$(value BYTES_PER_CONN)
  [[ $raw =~ ^[0-9]+(\.[0-9]+)?$ ]] || die_usage "$MEASURED: BYTES_PER_CONN must be a number of bytes, got '$raw'"
  BYTES=$(awk -v v="$raw" 'BEGIN { r = int(v); if (r < v) r++; print r }')
  is_count "$BYTES" || die_usage "$MEASURED: BYTES_PER_CONN must be positive, got '$raw'"
  how=$(value MEASURED_CMD) when=$(value MEASURED_AT)
  BYTES_FROM="$MEASURED${how:+ (measured by: $how}${when:+, $when}${how:+)}"
else
  BYTES=$BYTES_DEFAULT
  BYTES_FROM="default: the measured floor in the ringmq design notes (0.82 KB per idle connection, minimal glommio server); pass --bytes-per-conn or write $MEASURED"
fi

# --- helpers ---------------------------------------------------------------------------------------
read_sysctl() {
  local path=/proc/sys/${1//.//}
  [ -r "$path" ] || return 1
  tr -s ' \t' '  ' <"$path" | sed 's/^ //; s/ $//'
}
# Values such as "unlimited" or LONG_MAX compare as "huge".
as_num() { case "$1" in unlimited|infinity) echo 9223372036854775807 ;; *) echo "$1" ;; esac; }
ceil_div() { echo $(( ($1 + $2 - 1) / $2 )); }
human_bytes() { awk -v b="$1" 'BEGIN { if (b >= 1e9) printf "%.2f GB", b / 1e9; else printf "%.1f MB", b / 1e6 }'; }

BLOCKERS=()
WARNS=0
report() { # STATUS CHECK HAVE NEED FIX
  printf '%-7s  %-35s  have %-20s need %-20s fix: %s\n' "$1" "$2" "$3" "$4" "$5"
  case "$1" in
    BLOCKER) BLOCKERS+=("$2: $5") ;;
    WARN) WARNS=$((WARNS + 1)) ;;
  esac
}

MEM_AVAIL_KB=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
# Wording that depends on where the load generator runs (no "$(test && echo)": under set -e a
# false test inside an assignment's command substitution would end the script).
if [ "$LOCAL_GEN" = 1 ]; then
  gen_where="on this host (--remote-clients if not)"
  gen_files=" + $N load-generator"
  gen_mem=" + $N x $KBYTES B load-generator sockets (its own memory not counted)"
else
  gen_where="on other hosts" gen_files="" gen_mem=""
fi
kbytes_from="--kernel-bytes-per-socket"
if [ "$KBYTES" = "$KERNEL_BYTES_DEFAULT" ]; then
  kbytes_from="measured: slab per idle TCP socket, Linux 6.18, measure_socket_bytes.py"
fi
echo "check.sh: can $(hostname 2>/dev/null || echo this host) hold $N MQTT connections?"
echo "  kernel $(uname -r), $(nproc) CPUs, MemAvailable $(human_bytes $((MEM_AVAIL_KB * 1024))), load generator $gen_where"
echo "  broker bytes per connection: $BYTES ($BYTES_FROM)"
echo "  kernel bytes per socket: $KBYTES ($kbytes_from)"
echo

NEED_FD=$((N + FD_SLACK))

# --- per-process open files --------------------------------------------------------------------
soft=$(ulimit -Sn) hard=$(ulimit -Hn)
NR_OPEN=$(read_sysctl fs.nr_open || echo 1048576)
UNIT=$UNIT_REPO
if [ -f "$UNIT_INSTALLED" ]; then UNIT=$UNIT_INSTALLED; fi
unit_nofile=$(sed -n 's/^[[:space:]]*LimitNOFILE=\([^:[:space:]]*\).*/\1/p' "$UNIT" 2>/dev/null | tail -n 1)
unit_nofile=${unit_nofile:-unset}
server_fix="on a real server run the broker from systemd/ringmq.service (LimitNOFILE=1048576), or install limits.d/ringmq.conf with tune.sh and log in again"

# ringmq keeps connections in io_uring tables of direct descriptors, not process fds; the
# kernel caps one table at RLIMIT_NOFILE slots, and a shard opens up to 256 tables. So the
# broker itself needs only N / (256 x shards) (plus 1,024 spare slots per table's shard);
# a limit below N means more tables, not refused connections. Other brokers need N.
SHARDS_GUESS=$(nproc)
NEED_RINGMQ=$(( (N / SHARDS_GUESS + 1024 + 255) / 256 ))
if [ "$(as_num "$soft")" -ge "$NEED_FD" ]; then
  report OK "open files, soft (ulimit -Sn)" "$soft" ">= $NEED_FD" "-"
elif [ "$(as_num "$soft")" -ge "$NEED_RINGMQ" ]; then
  report OK "open files, soft (ulimit -Sn)" "$soft" ">= $NEED_RINGMQ" "- (enough for ringmq, which opens tables of $soft connections; a broker with one fd per connection needs $NEED_FD)"
elif [ "$(as_num "$hard")" -ge "$NEED_RINGMQ" ]; then
  report BLOCKER "open files, soft (ulimit -Sn)" "$soft" ">= $NEED_RINGMQ" "ulimit -Sn $NEED_RINGMQ (the hard limit allows it) before starting the broker (ringmq raises it itself at start)"
else
  if [ "$NEED_RINGMQ" -le "$NR_OPEN" ] && ( ulimit -Hn "$NEED_RINGMQ" ) 2>/dev/null; then
    hard_fix="as root: ulimit -Hn $NEED_RINGMQ -Sn $NEED_RINGMQ in the shell that starts the broker; $server_fix"
  else
    hard_fix="cannot be raised here (setrlimit refuses); $server_fix"
  fi
  report BLOCKER "open files, hard (ulimit -Hn)" "$hard" ">= $NEED_RINGMQ" "$hard_fix"
fi
if [ "$unit_nofile" = unset ] || [ "$(as_num "$unit_nofile")" -lt "$NEED_FD" ]; then
  report BLOCKER "LimitNOFILE in ringmq.service" "$unit_nofile" ">= $NEED_FD" "set LimitNOFILE=$NEED_FD in $UNIT (and fs.nr_open at least as high), systemctl daemon-reload"
else
  report OK "LimitNOFILE in ringmq.service" "$unit_nofile" ">= $NEED_FD" "- (governs the broker under systemd; $UNIT)"
fi

# systemd cannot start a unit whose LimitNOFILE exceeds fs.nr_open, whatever N is.
need_nr=$NEED_FD nr_why=""
if [ "$unit_nofile" != unset ] && [ "$(as_num "$unit_nofile")" -gt "$need_nr" ]; then
  need_nr=$(as_num "$unit_nofile") nr_why=" (>= LimitNOFILE, or systemd cannot start the unit)"
fi
if [ "$NR_OPEN" -lt "$need_nr" ]; then
  report BLOCKER "fs.nr_open (per-process fd cap)" "$NR_OPEN" ">= $need_nr" "sysctl -w fs.nr_open=$((need_nr > 2097152 ? need_nr : 2097152)) (tune.sh sets 2097152)$nr_why"
else
  report OK "fs.nr_open (per-process fd cap)" "$NR_OPEN" ">= $need_nr" "-$nr_why"
fi

# --- system-wide open files ----------------------------------------------------------------------
file_max=$(read_sysctl fs.file-max)
files_in_use=$(awk '{ print $1 }' /proc/sys/fs/file-nr)
sockets_here=$((N * (1 + LOCAL_GEN)))
need_files=$((files_in_use + sockets_here + FD_SLACK))
what="$files_in_use in use + $N broker$gen_files sockets"
if [ "$file_max" -lt "$need_files" ]; then
  report BLOCKER "fs.file-max (system-wide files)" "$file_max" ">= $need_files" "sysctl -w fs.file-max=$((need_files * 2)) (tune.sh sets 4194304); need = $what"
else
  report OK "fs.file-max (system-wide files)" "$file_max" ">= $need_files" "- (need = $what)"
fi

# --- ephemeral ports x source addresses for a load generator on this host ------------------------
if [ "$LOCAL_GEN" = 1 ]; then
  read -r port_lo port_hi <<<"$(read_sysctl net.ipv4.ip_local_port_range)"
  reserved=$(read_sysctl net.ipv4.ip_local_reserved_ports || echo "")
  # reserved ports inside the range are never handed out
  in_range_reserved=$(awk -v lo="$port_lo" -v hi="$port_hi" -v list="$reserved" 'BEGIN {
    n = split(list, parts, ","); c = 0;
    for (i = 1; i <= n; i++) { if (parts[i] == "") continue;
      m = split(parts[i], r, "-"); a = r[1]; b = (m > 1) ? r[2] : r[1];
      if (a < lo) a = lo; if (b > hi) b = hi; if (b >= a) c += b - a + 1 }
    print c }')
  ports=$((port_hi - port_lo + 1 - in_range_reserved))
  addrs=$(ceil_div "$N" "$ports")
  have="$ports ports/address"
  need="$addrs source address(es)"
  if [ "$addrs" -le 1 ]; then
    report OK "ephemeral ports x source addresses" "$have" "$need" "- (range $port_lo-$port_hi)"
  elif ip -4 -o addr show dev lo 2>/dev/null | grep -q ' 127\.0\.0\.1/8 '; then
    wide=$(ceil_div "$N" 55536)
    report WARN "ephemeral ports x source addresses" "$have" "$need" "all of 127.0.0.0/8 is on lo: ringmq-bench --ifaddr 127.0.0.2-127.0.0.$((addrs + 1)); or widen: sysctl -w net.ipv4.ip_local_port_range='10000 65535' ($wide addresses)"
  else
    report BLOCKER "ephemeral ports x source addresses" "$have" "$need" "add $addrs addresses: for i in \$(seq 2 $((addrs + 1))); do ip addr add 127.0.0.\$i/32 dev lo; done; then ringmq-bench --ifaddr"
  fi
fi

# --- accept and SYN backlogs ------------------------------------------------------------------------
# These do not cap how many connections are held; they cap how many may wait for accept() at
# once. Overflow drops SYNs and clients retry after 1 s, 3 s, 7 s: slow storms, not a limit.
need_backlog=$((N < 65535 ? N : 65535))
somaxconn=$(read_sysctl net.core.somaxconn)
if [ "$somaxconn" -lt "$need_backlog" ]; then
  report WARN "accept backlog (somaxconn)" "$somaxconn" ">= $need_backlog" "sysctl -w net.core.somaxconn=65535 (tune.sh); reconnect storms of N clients at once overflow it"
else
  report OK "accept backlog (somaxconn)" "$somaxconn" ">= $need_backlog" "-"
fi
synbl=$(read_sysctl net.ipv4.tcp_max_syn_backlog)
if [ "$synbl" -lt "$need_backlog" ]; then
  report WARN "SYN backlog (tcp_max_syn_backlog)" "$synbl" ">= $need_backlog" "sysctl -w net.ipv4.tcp_max_syn_backlog=65535 (tune.sh)"
else
  report OK "SYN backlog (tcp_max_syn_backlog)" "$synbl" ">= $need_backlog" "-"
fi

# --- memory -----------------------------------------------------------------------------------------
need_mem=$((N * (BYTES + KBYTES) + LOCAL_GEN * N * KBYTES))
avail=$((MEM_AVAIL_KB * 1024))
formula="$N x ($BYTES B broker + $KBYTES B kernel)$gen_mem"
if [ "$need_mem" -gt "$avail" ]; then
  report BLOCKER "memory (MemAvailable)" "$(human_bytes "$avail")" "$(human_bytes "$need_mem")" "a host with more free memory, or fewer connections per host; need = $formula"
else
  report OK "memory (MemAvailable)" "$(human_bytes "$avail")" "$(human_bytes "$need_mem")" "- (need = $formula)"
fi
# Buffer memory is charged in whole pages: each socket with data queued holds >= 1 page.
read -r _ _ tcp_mem_max <<<"$(read_sysctl net.ipv4.tcp_mem)"
if [ "$tcp_mem_max" -lt "$N" ]; then
  report WARN "TCP buffer pages (tcp_mem max)" "$tcp_mem_max pages" ">= $N pages" "sysctl -w net.ipv4.tcp_mem='1048576 1572864 2097152' (tune.sh); a message queued to all N at once needs one page each"
else
  report OK "TCP buffer pages (tcp_mem max)" "$tcp_mem_max pages" ">= $N pages" "-"
fi

# --- connection tracking ----------------------------------------------------------------------------
if ct_max=$(read_sysctl net.netfilter.nf_conntrack_max); then
  ct_count=$(read_sysctl net.netfilter.nf_conntrack_count || echo 0)
  established=$( (ss -Htn state established 2>/dev/null || true) | wc -l)
  ct_need=$((N + ct_count))
  ct_fix="sysctl -w net.netfilter.nf_conntrack_max=2097152 (tune.sh), or exempt the MQTT ports: nft 'tcp dport { 1883, 8883 } notrack' in a raw-priority chain"
  if [ "$ct_max" -ge "$ct_need" ]; then
    report OK "conntrack (nf_conntrack_max)" "$ct_max" ">= $ct_need" "-"
  elif [ "$ct_count" = 0 ] && [ "$established" -gt 0 ]; then
    report WARN "conntrack (nf_conntrack_max)" "$ct_max" ">= $ct_need" "loaded but tracking nothing ($established TCP connections, 0 entries: no rule uses it); a stateful firewall or NAT would make it a blocker: $ct_fix"
  else
    report BLOCKER "conntrack (nf_conntrack_max)" "$ct_max" ">= $ct_need" "$ct_fix"
  fi
else
  report OK "conntrack (nf_conntrack_max)" "not loaded" "-" "- (nf_conntrack is not loaded: nothing is tracked)"
fi

# --- io_uring -----------------------------------------------------------------------------------------
if io_dis=$(read_sysctl kernel.io_uring_disabled); then
  if [ "$io_dis" = 0 ]; then
    report OK "io_uring (kernel.io_uring_disabled)" "0" "0" "-"
  else
    report BLOCKER "io_uring (kernel.io_uring_disabled)" "$io_dis" "0" "sysctl -w kernel.io_uring_disabled=0 (tune.sh); ringmq does all its I/O through io_uring"
  fi
else
  report OK "io_uring (kernel.io_uring_disabled)" "absent" "-" "- (kernel before 6.6: io_uring always allowed)"
fi

echo
if [ "${#BLOCKERS[@]}" -eq 0 ]; then
  echo "OK: nothing on this host stops $N connections ($WARNS warning(s) above)."
  exit 0
fi
echo "${#BLOCKERS[@]} blocker(s) stop $N connections on this host:"
for b in "${BLOCKERS[@]}"; do
  echo "  - $b"
done
exit 1
