"""Relative paths follow the config file, and a reading command never makes an empty database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.config.settings import parse_settings
from tests.conftest import ROOT, make_mail


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "INTAKE_GATEWAY_CONFIG": ""})


def test_default_state_lives_beside_the_config_file(tmp_path: Path) -> None:
    """With no state_dir, the database and the maildir are in var/ beside the config, from
    whichever directory a command runs; `tickets list` before any database exists says so,
    exits 1 and creates nothing."""
    home, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    config = home / "config.toml"
    config.write_text('[trust]\nmode = "off"\n', encoding="utf-8")
    settings = parse_settings(config.read_text(), config)
    assert settings.database_url() == f"sqlite:///{home / 'var' / 'intake.db'}"
    assert settings.outgoing.maildir == home / "var" / "outgoing"

    refused = run("--config", str(config), "tickets", "list", cwd=elsewhere)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout == ""
    assert f"no database at {home / 'var' / 'intake.db'}" in refused.stderr
    assert "would create a new, empty one" in refused.stderr
    assert list(elsewhere.iterdir()) == [] and list(home.iterdir()) == [config]
    for command in (["quarantine", "list"], ["tickets", "show", "SUP-000001"],
                    ["events"], ["report", "sla", "--from", "2026-11-01", "--to", "2026-11-30"]):
        again = run("--config", str(config), *command, cwd=elsewhere)
        assert again.returncode == 1 and "no database at" in again.stderr, command
    assert list(home.iterdir()) == [config]

    mail = elsewhere / "first.eml"
    mail.write_bytes(make_mail("Beside the config"))
    assert run("--config", str(config), "ingest", "--acknowledge", str(mail),
               cwd=elsewhere).returncode == 0
    assert (home / "var" / "intake.db").exists()
    assert len(list((home / "var" / "outgoing" / "new").iterdir())) == 1
    listed = run("--config", "config.toml", "tickets", "list", cwd=home)
    assert listed.returncode == 0 and "Beside the config" in listed.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["first.eml"]


def test_relative_sqlite_url_follows_the_config_file(tmp_path: Path) -> None:
    """`sqlite:///data/intake.db` in a config file is data/ beside the file; absolute URLs,
    memory databases and PostgreSQL URLs are left as written."""
    config = tmp_path / "config.toml"
    for written, meant in (
            ("sqlite:///data/intake.db", f"sqlite:///{tmp_path / 'data' / 'intake.db'}"),
            ("sqlite:///data/i.db?timeout=5", f"sqlite:///{tmp_path / 'data' / 'i.db'}?timeout=5"),
            ("sqlite:////srv/intake.db", "sqlite:////srv/intake.db"),
            ("sqlite:///:memory:", "sqlite:///:memory:"),
            ("postgresql+psycopg://u@db/intake", "postgresql+psycopg://u@db/intake")):
        settings = parse_settings(f'[database]\nurl = "{written}"\n', config)
        assert settings.database_url() == meant


def test_reading_an_empty_database_is_refused(tmp_path: Path, database_url: str) -> None:
    """An existing but empty database (a fresh PostgreSQL schema) is not filled with tables
    by `tickets list`: it says so and exits 1."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()
    refused = run("--config", str(config), "tickets", "list", cwd=tmp_path)
    assert refused.returncode == 1
    assert "holds no gateway tables" in refused.stderr
    assert refused.stdout == ""
