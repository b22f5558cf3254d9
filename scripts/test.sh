#!/usr/bin/env bash
# The whole test suite: lints, unit and property tests, and integration tests against the real
# broker with real clients. Installs what the tests need on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import paho.mqtt' >/dev/null 2>&1; then
  echo "== installing paho-mqtt"
  python3 -m pip install -q 'paho-mqtt>=2,<3' pytest
fi
python3 -c 'import pytest' >/dev/null 2>&1 || python3 -m pip install -q pytest

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"; cargo test --workspace
echo "== kernel-tuning"; bash kernel-tuning/test.sh
if [ -d tests/python ]; then
  echo "== integration (python, real clients)"
  cargo build --release -p ringmq -p ringmq-bench
  python3 -m pytest -q tests/python
fi
