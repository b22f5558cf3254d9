#!/usr/bin/env bash
# tune.sh: installs ringmq's kernel settings, login limits, system user and systemd unit, and
# applies the sysctls, idempotently. It owns nothing but the five files it installs; it never
# lowers a limit marked "policy: raise-only" in sysctl.d/90-ringmq.conf, never starts or
# restarts the broker, and with --dry-run changes nothing at all.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYSCTL_NAME=90-ringmq.conf

usage() {
  cat <<EOF
Usage: $(basename "$0") [--dry-run] [--root DIR] [--from DIR] [--help]

Installs ringmq's tuning and applies it (as root):
  sysctl.d/$SYSCTL_NAME    -> /etc/sysctl.d/$SYSCTL_NAME, then applied with sysctl -p
  limits.d/ringmq.conf     -> /etc/security/limits.d/ringmq.conf
  sysusers.d/ringmq.conf   -> /etc/sysusers.d/ringmq.conf, and the ringmq user is created
  systemd/ringmq.service   -> /etc/systemd/system/ringmq.service, then systemctl daemon-reload
                              (only when systemd is running and the unit changed)
Running it twice changes nothing the second time. Keys marked "policy: raise-only" keep this
host's value where it is already higher (field by field), so tuning never lowers a limit.

Options:
  --dry-run   print what would change (current -> new for every sysctl key, a diff for every
              file) and change nothing; needs no root
  --root DIR  install the files under DIR instead of / (for packaging or testing): no sysctl
              is applied, no user created, no daemon-reload; the sysctl file is copied as is
  --from DIR  take the files from DIR (same layout as kernel-tuning/: sysctl.d/, limits.d/,
              sysusers.d/, systemd/) instead of the directory holding this script
  -h, --help  this text

Exit status: 0 done (or nothing to do), 1 failure or not root, 2 bad usage.
EOF
}

die() { echo "tune.sh: $*" >&2; exit 1; }

DRY=0
ROOT=""
SRC=$HERE
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --root) [ $# -ge 2 ] || { echo "tune.sh: --root needs a directory" >&2; exit 2; }
            ROOT=$2; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    --from) [ $# -ge 2 ] || { echo "tune.sh: --from needs a directory" >&2; exit 2; }
            SRC=$2; shift ;;
    --from=*) SRC=${1#--from=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "tune.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

LIVE=1
PREFIX=""
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
  PREFIX=$(cd "$ROOT" && pwd)
  [ "$PREFIX" = / ] && PREFIX=""
  [ -n "$PREFIX" ] && LIVE=0
fi
if [ "$DRY" = 0 ] && [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
  die "must run as root to change kernel settings and files under /etc (sudo $0), or use --dry-run to see what would change, or --root DIR to install the files under DIR"
fi

SYSCTL_SRC=$SRC/sysctl.d/$SYSCTL_NAME
for f in "$SYSCTL_SRC" "$SRC/limits.d/ringmq.conf" "$SRC/sysusers.d/ringmq.conf" \
         "$SRC/systemd/ringmq.service"; do
  [ -r "$f" ] || die "missing $f"
done

# --- reading the kernel ----------------------------------------------------------------------

# Prints a sysctl's current value with whitespace squeezed to single spaces, or fails when the
# key does not exist on this kernel (module not loaded, kernel too old).
read_sysctl() {
  local path=/proc/sys/${1//.//}
  [ -r "$path" ] || return 1
  tr -s ' \t' '  ' <"$path" | sed 's/^ //; s/ $//'
}

# Fieldwise maximum of two space-separated numeric lists of the same length; prints nothing
# when either is not purely numeric (such keys are set, never compared).
fieldwise_max() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); m = split(b, y, " ");
    if (n != m) exit 1;
    for (i = 1; i <= n; i++) {
      if (x[i] !~ /^[0-9]+$/ || y[i] !~ /^[0-9]+$/) exit 1;
      # compare as strings of digits: values can exceed awk doubles (LONG_MAX)
      xa = x[i]; ya = y[i]; sub(/^0+/, "", xa); sub(/^0+/, "", ya);
      big = (length(xa) != length(ya)) ? (length(xa) > length(ya) ? x[i] : y[i]) : (xa >= ya ? x[i] : y[i]);
      out = out (i > 1 ? " " : "") big;
    }
    print out }'
}

# --- the sysctl file: parse, and render for this host -----------------------------------------

KEYS=() WANT=() OPTIONAL=() RAISE=()
RENDERED=$(mktemp)
trap 'rm -f "$RENDERED"' EXIT

COMMENT_RE='^[[:space:]]*([#;].*)?$'
raise_next=0
while IFS= read -r line || [ -n "$line" ]; do
  if [[ $line =~ ^#[[:space:]]*policy:[[:space:]]*raise-only ]]; then
    raise_next=1
    printf '%s\n' "$line" >>"$RENDERED"
    continue
  fi
  if [[ $line =~ ^(-?)([A-Za-z0-9_.-]+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
    opt=${BASH_REMATCH[1]} key=${BASH_REMATCH[2]}
    want=$(printf '%s' "${BASH_REMATCH[3]}" | tr -s ' \t' '  ' | sed 's/ $//')
    new=$want
    if [ "$LIVE" = 1 ] && [ "$raise_next" = 1 ] && cur=$(read_sysctl "$key"); then
      if m=$(fieldwise_max "$cur" "$want") && [ -n "$m" ]; then new=$m; fi
    fi
    KEYS+=("$key") WANT+=("$new") OPTIONAL+=("${opt:+1}") RAISE+=("$raise_next")
    if [ "$new" != "$want" ]; then
      echo "# tune.sh: kept this host's higher value where it exceeds ringmq's floor ($want)" >>"$RENDERED"
    fi
    printf '%s%s = %s\n' "$opt" "$key" "$new" >>"$RENDERED"
    raise_next=0
    continue
  fi
  [[ $line =~ $COMMENT_RE ]] || die "$SYSCTL_SRC: cannot parse line: $line"
  # a policy line binds only to a key right below it (comments between are fine)
  [[ $line =~ ^[[:space:]]*$ ]] && raise_next=0
  printf '%s\n' "$line" >>"$RENDERED"
done <"$SYSCTL_SRC"
[ "$LIVE" = 1 ] || cp "$SYSCTL_SRC" "$RENDERED"

CHANGES=0
FAILED=0

echo "== sysctl (current -> new)"
missing=0
for i in "${!KEYS[@]}"; do
  key=${KEYS[$i]} new=${WANT[$i]}
  if [ "$LIVE" = 0 ]; then
    echo "sysctl $key: $new (installed under $PREFIX; applied when the target boots)"
  elif ! cur=$(read_sysctl "$key"); then
    if [ -n "${OPTIONAL[$i]}" ]; then
      echo "sysctl $key: absent on this host (module not loaded or kernel too old), skipped"
    else
      echo "sysctl $key: ERROR: absent on this kernel, cannot be set"
      missing=1
    fi
  elif [ "$cur" = "$new" ]; then
    if [ "${RAISE[$i]}" = 1 ]; then
      echo "sysctl $key: $cur (unchanged; raise-only floor met)"
    else
      echo "sysctl $key: $cur (unchanged)"
    fi
  else
    echo "sysctl $key: $cur -> $new"
    CHANGES=$((CHANGES + 1))
  fi
done
[ "$missing" = 0 ] || die "required sysctl keys are missing on this kernel; nothing was changed"

# A file sorting after ours in any sysctl.d directory is applied later at boot and wins.
if [ "$LIVE" = 1 ]; then
  for dir in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do
    for f in "$dir"/*.conf; do
      [ -f "$f" ] || continue
      base=$(basename "$f")
      [[ $base > $SYSCTL_NAME ]] || continue
      for key in "${KEYS[@]}"; do
        if grep -Eq "^[[:space:]]*-?${key//./\\.}[[:space:]]*=" "$f"; then
          echo "WARN: $f also sets $key and is applied after $SYSCTL_NAME at boot; its value wins"
        fi
      done
    done
  done
fi

# --- files --------------------------------------------------------------------------------------

# install_file SRC DST: copies SRC to $PREFIX/DST (mode 0644) when the content differs;
# with --dry-run prints the diff instead. Sets FILE_CHANGED=1 when DST was (or would be) changed.
FILE_CHANGED=0
install_file() {
  local src=$1 dst=$PREFIX$2
  FILE_CHANGED=0
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    echo "file $dst: unchanged"
    return 0
  fi
  FILE_CHANGED=1
  CHANGES=$((CHANGES + 1))
  if [ -f "$dst" ]; then
    echo "file $dst: changed"
  else
    echo "file $dst: new"
  fi
  if [ "$DRY" = 1 ]; then
    local old=$dst
    [ -f "$dst" ] || old=/dev/null
    diff -u --label "$dst (now)" --label "$dst (new)" "$old" "$src" | sed 's/^/    /' || true
    return 0
  fi
  mkdir -p "$(dirname "$dst")"
  # write beside the target, then rename: a reader never sees half a file
  cp "$src" "$dst.ringmq-tmp"
  chmod 0644 "$dst.ringmq-tmp"
  mv -f "$dst.ringmq-tmp" "$dst"
}

echo "== files"
install_file "$RENDERED" "/etc/sysctl.d/$SYSCTL_NAME"

if [ "$DRY" = 0 ] && [ "$LIVE" = 1 ]; then
  # -e: optional keys absent on this host are skipped (checked above for required ones)
  if ! out=$(sysctl -e -p "/etc/sysctl.d/$SYSCTL_NAME" 2>&1); then
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    echo "ERROR: sysctl -p /etc/sysctl.d/$SYSCTL_NAME reported errors (above)" >&2
    FAILED=1
  fi
  for i in "${!KEYS[@]}"; do
    if cur=$(read_sysctl "${KEYS[$i]}") && [ "$cur" != "${WANT[$i]}" ]; then
      echo "ERROR: ${KEYS[$i]} is $cur after applying, wanted ${WANT[$i]} (read-only /proc/sys in a container?)" >&2
      FAILED=1
    fi
  done
fi

# pam_limits refuses logins whose hard nofile exceeds fs.nr_open: never install a limit the
# kernel cannot grant.
limits_src=$SRC/limits.d/ringmq.conf
nofile_max=$(awk '!/^[[:space:]]*#/ && $3 == "nofile" && $4 ~ /^[0-9]+$/ && $4 > m { m = $4 } END { print m + 0 }' "$limits_src")
nr_open=$(read_sysctl fs.nr_open || echo 0)
if [ "$DRY" = 1 ]; then
  # in a dry run, judge against the value the sysctl step would set
  for i in "${!KEYS[@]}"; do
    if [ "${KEYS[$i]}" = fs.nr_open ]; then nr_open=${WANT[$i]}; fi
  done
fi
if [ "$LIVE" = 1 ] && [ "$nr_open" -lt "$nofile_max" ]; then
  echo "ERROR: fs.nr_open is $nr_open, below the nofile $nofile_max in limits.d/ringmq.conf; not installing it (logins would fail)" >&2
  FAILED=1
else
  install_file "$limits_src" /etc/security/limits.d/ringmq.conf
fi

install_file "$SRC/sysusers.d/ringmq.conf" /etc/sysusers.d/ringmq.conf
install_file "$SRC/systemd/ringmq.service" /etc/systemd/system/ringmq.service
unit_changed=$FILE_CHANGED

echo "== user and systemd"
if [ "$LIVE" = 0 ]; then
  echo "user ringmq: created on the target by systemd-sysusers at boot"
elif getent passwd ringmq >/dev/null 2>&1; then
  echo "user ringmq: exists"
elif [ "$DRY" = 1 ]; then
  echo "user ringmq: would be created"
  CHANGES=$((CHANGES + 1))
else
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /etc/sysusers.d/ringmq.conf
  else
    useradd --system --user-group --home-dir /var/lib/ringmq --no-create-home \
      --shell /usr/sbin/nologin --comment "ringmq MQTT broker" ringmq
  fi
  echo "user ringmq: created"
  CHANGES=$((CHANGES + 1))
fi

# /run/systemd/system exists only when systemd is PID 1 (sd_booted(3)).
if [ "$LIVE" = 0 ]; then
  echo "systemd: daemon-reload skipped (--root)"
elif [ ! -d /run/systemd/system ]; then
  echo "systemd: not running on this host; daemon-reload skipped"
elif [ "$unit_changed" = 0 ]; then
  echo "systemd: unit unchanged; no daemon-reload needed"
elif [ "$DRY" = 1 ]; then
  echo "systemd: would run systemctl daemon-reload"
else
  systemctl daemon-reload
  echo "systemd: daemon-reload done"
fi

if [ "$FAILED" = 1 ]; then
  die "finished with errors (above)"
elif [ "$DRY" = 1 ]; then
  echo "dry run: $CHANGES change(s) would be made; nothing was changed"
else
  echo "done: $CHANGES change(s) made"
fi
