"""The processes a benchmark starts: the daemon under test, py-spy, and their CPU and config."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.mail_factory import SUPPORT_ADDRESS

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


class BenchError(Exception):
    """A failure that ends the run with a clear message (timeout, daemon died, ...)."""



def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of PID and its live child processes (the daemon's workers),
    from Linux /proc; without PID, of this process and its threads."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return own + sum(cpu_seconds(child) for child in children)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])



class Daemon:
    """`intake-gateway --config CFG run` as a subprocess, stopped with SIGTERM."""

    def __init__(self, config: Path, smtp_port: int, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "intake-gateway"), "--config", str(config), "run"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=config.parent, start_new_session=True)
        self.port = smtp_port

    def wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited with {self.proc.returncode} before "
                                 f"listening:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                    conn.settimeout(5)
                    if conn.recv(512).startswith(b"220"):
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the daemon did not answer on port {self.port} within {timeout:.0f} s"
                         f":\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the daemon died (exit {self.proc.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"bench: the daemon did not stop within {timeout:.0f} s; killing it",
                      file=sys.stderr)
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Profiler:
    """Optional `py-spy record` on the daemon for the duration of the throughput phase."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        py_spy = shutil.which("py-spy", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if py_spy is None:
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(output.suffix, "raw")
        self.proc = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt,
             "--threads", "--subprocesses", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def write_config(directory: Path, smtp_port: int, sink_port: int,
                 relay_connections: int | None, workers: int | None = None,
                 worker_niceness: int | None = None, event_loop: str | None = None,
                 trust: str = '[trust]\nmode = "off"\n') -> Path:
    config = directory / "gateway.toml"
    extra = f"connections = {relay_connections}\n" if relay_connections else ""
    config.write_text(f"""\
# Written by the SMTP benchmark (bench/processes.py)
[database]
url = "sqlite:///{directory / 'intake.db'}"

[smtp]
listen = "127.0.0.1:{smtp_port}"
recipients = ["{SUPPORT_ADDRESS}"]

[http]
listen = "127.0.0.1:{free_port()}"

[outgoing]
from = "Support <{SUPPORT_ADDRESS}>"
host = "127.0.0.1"
port = {sink_port}
security = "none"
maildir = "{directory / 'outgoing'}"
{extra}
[intake]
state_dir = "{directory / 'state'}"
# Registers around the clock, so a run at night measures acknowledgements like one by day.
unknown_customer_tier = "24/7"
{f"workers = {workers}" if workers is not None else ""}
{f"worker_niceness = {worker_niceness}" if worker_niceness is not None else ""}
{f'event_loop = "{event_loop}"' if event_loop is not None else ""}

[loops]
# 400 generated senders write 25+ messages each within minutes; the default limit (10 per
# 3 hours) would rightly stop acknowledging them.
sender_limit = 1000000

[logging]
level = "warning"

{trust}""", encoding="utf-8")
    return config


