"""The shipped examples/ and the README's first mail work as written, on a real daemon."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port
from tests.ops.daemon import start_daemon, wait_for_listening, wait_until

EXAMPLES = ROOT / "examples"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, check=False,
                          env={**os.environ, "INTAKE_GATEWAY_CONFIG": ""})


def on_ports(config: Path, smtp_port: int, http_port: int) -> None:
    """CONFIG with its listeners moved to free ports (the shipped ones may be taken here)."""
    text = config.read_text(encoding="utf-8")
    text, smtp = re.subn(r'(?m)^listen = "127\.0\.0\.1:2525"$',
                         f'listen = "127.0.0.1:{smtp_port}"', text)
    text, http = re.subn(r'(?m)^listen = "127\.0\.0\.1:8080"$',
                         f'listen = "127.0.0.1:{http_port}"', text)
    assert (smtp, http) == (1, 1)
    config.write_text(text, encoding="utf-8")


def stop(daemon: subprocess.Popen[bytes], log: Path) -> None:
    if daemon.poll() is None:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    assert daemon.returncode == 0, log.read_text(errors="replace")


def test_shipped_examples_check_and_start(tmp_path: Path) -> None:
    """check-config accepts examples/config.toml (with its customers.toml) as shipped, and a
    daemon starts with a copy of them: SMTP listens, /healthz answers, SIGTERM exits 0."""
    checked = cli("--config", str(EXAMPLES / "config.toml"), "check-config")
    assert (checked.returncode, checked.stdout.strip()) == (
        0, f"{EXAMPLES / 'config.toml'}: OK"), checked.stderr
    assert not (EXAMPLES / "var").exists()
    for name in ("config.toml", "customers.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    smtp_port, http_port = free_port(), free_port()
    on_ports(tmp_path / "config.toml", smtp_port, http_port)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(tmp_path / "config.toml", log)
    try:
        wait_for_listening(smtp_port, daemon, log)
        wait_for_listening(http_port, daemon, log)
        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=30).status_code == 200
    finally:
        stop(daemon, log)
    assert (tmp_path / "var" / "intake.db").exists()


def readme_first_mail() -> str:
    """The README's `python3 -c '...'` first mail, as written there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^python3 -c '(.*?)'$", readme, re.MULTILINE | re.DOTALL)
    assert match, "the README's smtplib example is gone"
    return match.group(1)


def test_readme_first_mail_is_acknowledged(tmp_path: Path) -> None:
    """The README's smtplib example, sent as written (only the port moved) to a daemon on the
    embedded defaults, registers SUP-000001 and its answer lands in var/outgoing/new,
    addressed to the sender, with the number in its subject."""
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\n\n'
                      f'[http]\nlisten = "127.0.0.1:{http_port}"\n', encoding="utf-8")
    code = readme_first_mail()
    assert code.count("2525") == 1
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_for_listening(smtp_port, daemon, log)
        subprocess.run([sys.executable, "-c", code.replace("2525", str(smtp_port))],
                       check=True, timeout=60)
        outgoing = tmp_path / "var" / "outgoing" / "new"
        wait_until(lambda: outgoing.is_dir() and any(outgoing.iterdir()), timeout=120)
    finally:
        stop(daemon, log)
    [answer] = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in outgoing.iterdir()]
    assert answer["To"].addresses[0].addr_spec == "ivan@acme.example"
    assert "[SUP-000001]" in answer["Subject"]
    listed = cli("--config", str(config), "tickets", "list")
    assert listed.returncode == 0 and "SUP-000001" in listed.stdout, listed.stderr
