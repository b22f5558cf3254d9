"""pytest fixtures: start a real broker per test, shard-aware client ids, per-test deadline.

Role: owns the `broker` fixture factory (ringmq from target/release, or Mosquitto when
RINGMQ_TEST_BROKER=mosquitto, so the suite is validated against a reference broker), the
home-shard hash from docs/interfaces (FNV-1a 64), and the markers that say which tests only
make sense for ringmq. It must never leave a broker process running after a test, and never
let one test wait without a deadline.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BROKER_KIND = os.environ.get("RINGMQ_TEST_BROKER", "ringmq")
MOSQUITTO = BROKER_KIND == "mosquitto"
TEST_DEADLINE_S = 60  # no single test may take longer; the whole suite stays well under 5 min


def ringmq_only(reason: str):
    """Mark a test (or a parameter) as meaningful only against ringmq."""
    return pytest.mark.skipif(MOSQUITTO, reason=f"ringmq-only: {reason}")


def shard_params(counts=(1, 2, 4)):
    """Shard counts for cross-shard tests; only 1 shard exists under Mosquitto."""
    return [c if c == 1 else pytest.param(c, marks=ringmq_only("Mosquitto has no shards"))
            for c in counts]


# ---------------------------------------------------------------------------------- hashing

def fnv1a_64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def home_shard(client_id: str, n: int) -> int:
    return fnv1a_64(client_id.encode()) % n


def retained_shard(topic: str, n: int) -> int:
    return fnv1a_64(topic.encode()) % n


def client_id_on_shard(prefix: str, shard: int, n: int) -> str:
    """First id `prefix-K` (K = 0, 1, ...) whose home shard is `shard` of `n`."""
    assert 0 <= shard < n
    for k in range(100_000):
        cid = f"{prefix}-{k}"
        if home_shard(cid, n) == shard:
            return cid
    raise AssertionError(f"no id with prefix {prefix!r} lands on shard {shard}/{n}")


# ----------------------------------------------------------------------------------- broker

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ringmq_binary() -> Path:
    if os.environ.get("RINGMQ_BIN"):
        return Path(os.environ["RINGMQ_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "ringmq"


def to_toml(config: dict) -> str:
    """Nested dict -> TOML tables (enough for the flat [section] keys the tests set)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)

    top = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
              for k, v in config.items() if isinstance(v, dict)]
    return "\n".join(top + tables) + "\n"


# ringmq config key -> mosquitto.conf option; keys not listed cannot be mapped.
MOSQUITTO_MAP = {
    ("limits", "max_queued_messages"): "max_queued_messages",
    ("limits", "max_packet_size"): "max_packet_size",
    ("limits", "max_inflight"): "max_inflight_messages",
    ("limits", "max_connections"): "max_connections",
    ("limits", "max_keepalive"): "max_keepalive",
}


def to_mosquitto_conf(port: int, config: dict) -> str:
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             "log_dest stderr", "log_type error", "log_type warning", "log_type notice",
             "log_type information"]
    for section, items in config.items():
        for key, v in (items.items() if isinstance(items, dict) else [(None, items)]):
            opt = MOSQUITTO_MAP.get((section, key))
            if opt is None:
                pytest.skip(f"ringmq-only: config {section}.{key} has no Mosquitto equivalent")
            lines.append(f"{opt} {v}")
    return "\n".join(lines) + "\n"


class Broker:
    """One running broker process listening on 127.0.0.1:port."""

    def __init__(self, workdir: Path, shards: int, config: dict, wrap=(), args=()):
        self.host, self.port, self.shards = "127.0.0.1", free_port(), shards
        self.kind = BROKER_KIND
        self.stdout_path = workdir / f"broker-{self.port}.out"
        self.stderr_path = workdir / f"broker-{self.port}.err"
        if MOSQUITTO:
            conf = workdir / f"mosquitto-{self.port}.conf"
            conf.write_text(to_mosquitto_conf(self.port, config))
            cmd = ["mosquitto", "-c", str(conf)]
        else:
            binary = ringmq_binary()
            if not binary.exists():
                pytest.fail(f"{binary} not found: run `cargo build --release -p ringmq` "
                            f"(or set RINGMQ_BIN, or RINGMQ_TEST_BROKER=mosquitto)")
            cmd = [str(binary), "--listen", f"{self.host}:{self.port}", "--shards", str(shards),
                   *args]
            if config:
                conf = workdir / f"ringmq-{self.port}.toml"
                conf.write_text(to_toml(config))
                cmd += ["--config", str(conf)]
        self.cmd = list(wrap) + cmd
        cmd = self.cmd
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        self.stopped = False
        self._wait_ready(timeout=15)

    def stderr(self) -> str:
        self._err.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"broker exited with {self.proc.returncode} during start-up: "
                            f"{' '.join(self.cmd)}\nstderr:\n{self.stderr()}")
            # ringmq prints its listening line once every shard accepts (interfaces.md).
            announced = MOSQUITTO or b"ringmq listening on" in self.stdout_path.read_bytes()
            if announced and self._accepts():
                return
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"broker not ready within {timeout}s: {' '.join(self.cmd)}\n"
                    f"stdout:\n{self.stdout_path.read_text(errors='replace')[-2000:]}\n"
                    f"stderr:\n{self.stderr()}")

    def assert_alive(self):
        rc = self.proc.poll()
        assert rc is None, f"broker died with exit code {rc}\nstderr:\n{self.stderr()}"

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (the broker must exit 0 on SIGTERM)."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("broker did not stop within 10 s of SIGTERM")
        self._out.close()
        self._err.close()
        return self.proc.returncode


@pytest.fixture
def broker(tmp_path):
    """Factory: `broker(shards=1, config=None)` starts a broker; all stop after the test.

    Teardown fails the test if a broker died on its own (crash) or did not exit 0 on SIGTERM.
    """
    started = []

    def start(shards: int = 1, config: dict = None, wrap=(), args=()) -> Broker:
        """`wrap`: a command prefix, e.g. ("prlimit", "--nofile=100") for a low fd limit;
        `args`: more ringmq flags (e.g. a TLS listener)."""
        b = Broker(tmp_path, shards, config or {}, wrap, args)
        started.append(b)
        return b

    yield start
    problems = []
    for b in started:
        died = b.proc.poll()
        rc = b.stop()
        if died is not None:
            problems.append(f"broker on port {b.port} died during the test (exit {died}):\n"
                            f"{b.stderr()}")
        elif rc != 0:
            problems.append(f"broker on port {b.port} exited {rc} on SIGTERM:\n{b.stderr()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture(autouse=True)
def _deadline():
    """Hard per-test deadline, so a hung broker cannot hang the suite."""
    def expire(_sig, _frame):
        raise TimeoutError(f"test exceeded {TEST_DEADLINE_S}s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
