#!/usr/bin/env bash
# The whole test suite: lints, unit and property tests, and integration tests against the real
# broker with real clients. Installs what the tests need on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# The TLS tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# MQTT.js runs under node; npm installs it.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Python tools go into a virtual environment of our own: Debian's python3 refuses
# `pip install` outside one (PEP 668), and a fresh machine may have no pip at all.
VENV=target/test-venv
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "== installing python3-venv"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
if ! "$VENV/bin/python" -c 'import paho.mqtt, pytest' >/dev/null 2>&1; then
  echo "== installing paho-mqtt and pytest into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q 'paho-mqtt>=2,<3' pytest
fi
PY="$PWD/$VENV/bin/python"
# MQTT.js (npm `mqtt`) for the WebSocket tests, in a directory of our own.
if [ ! -f target/test-node/node_modules/mqtt/package.json ]; then
  echo "== installing MQTT.js into target/test-node"
  npm install -s --no-audit --no-fund --prefix target/test-node mqtt@5 >/dev/null
fi

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"; cargo test --workspace
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  # Bounded fuzzing of the codec and of the shard's promises (fuzz/README.md), from the
  # committed seeds (past failures among them) with a fixed seed (FUZZ_SEED). Stable
  # toolchain: no sanitizer, and RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its flags.
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install -q cargo-fuzz --locked --version 0.13.2
  fi
  for t in decode topic shard; do
    echo "== fuzz $t (${FUZZ_SECONDS} s)"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    mkdir -p "fuzz/corpus/$t"
    log="target/fuzz-$t.log"
    if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$t" "corpus/$t" "${seeds[@]/#fuzz\//}" -- \
        -max_total_time="$FUZZ_SECONDS" -seed="${FUZZ_SEED:-1}") >"$log" 2>&1; then
      tail -1 "$log"
    else
      tail -60 "$log"; echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/"; exit 1
    fi
  done
fi
echo "== kernel-tuning"; bash kernel-tuning/test.sh
if [ -d tests/python ]; then
  echo "== integration (python, real clients)"
  cargo build --release -p ringmq -p ringmq-bench
  "$PY" -m pytest -q tests/python
fi
