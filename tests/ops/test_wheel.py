"""The wheel, installed outside the work tree, carries its templates, migrations and defaults."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: the packaging files and the three packages, nothing else.
SOURCES = ["pyproject.toml", "README.md", "gateway", "parsers", "rules"]
# Files that are not Python but that the installed package reads at run time.
DATA_FILES = {
    "gateway.outbox": ["templates/acknowledgement.ru.txt.j2", "templates/escalation.en.txt.j2",
                       "templates/pending_registration.en.txt.j2"],
    "gateway.sla": ["defaults/policy.toml"],
    "gateway.store": ["migrations/env.py", "migrations/script.py.mako",
                      "migrations/versions/0001_initial_schema.py"],
    "rules": ["default_rules.toml", "triage/lexicon.toml"],
}
CHECK_FILES = f"""
import importlib.resources, json
print(json.dumps({{package: [importlib.resources.files(package).joinpath(name).is_file()
                             for name in names] for package, names in {DATA_FILES!r}.items()}}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed: its bin/ directory.

    The wheel is built by pip from a copy of the sources (pip's isolated build, which takes
    setuptools from the configured package index), so the build leaves nothing in the work
    tree. Installing the dependencies again would take minutes: the new environment reads them
    from this one's site-packages through a .pth line, which adds the directory alone and runs
    none of its .pth files, so the work tree's editable install stays out of sight.
    """
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--wheel-dir", str(wheels), str(source)], check=True, timeout=240,
                   capture_output=True)
    [wheel] = wheels.glob("intake_gateway-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True, timeout=120,
                   capture_output=True)
    [packages] = (venv / "lib").glob("python3*/site-packages")
    (packages / "test-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    return venv / "bin"


def run(command: list[str], cwd: Path, **kwargs: str) -> subprocess.CompletedProcess[str]:
    """COMMAND in CWD, with no configuration from this environment's variables."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("INTAKE_GATEWAY_CONFIG", "PYTHONPATH")}
    return subprocess.run(command, cwd=cwd, env={**env, **kwargs}, capture_output=True,
                          text=True, timeout=120, check=True)


def test_the_installed_package_is_the_wheel_not_the_work_tree(installed: Path,
                                                              tmp_path: Path) -> None:
    """The new environment imports gateway, parsers and rules from its own site-packages."""
    out = run([str(installed / "python"), "-c",
               "import gateway, parsers, rules; "
               "print(gateway.__file__, parsers.__file__, rules.__file__)"], tmp_path)
    for path in out.stdout.split():
        assert Path(path).is_relative_to(installed.parent), path


def test_the_wheel_carries_templates_migrations_and_defaults(installed: Path,
                                                            tmp_path: Path) -> None:
    """Every data file the daemon reads at run time is inside the installed packages."""
    out = run([str(installed / "python"), "-c", CHECK_FILES], tmp_path)
    found = json.loads(out.stdout)
    assert found == {package: [True] * len(names) for package, names in DATA_FILES.items()}


def test_console_script_checks_the_embedded_defaults(installed: Path, tmp_path: Path) -> None:
    """`intake-gateway check-config` from the wheel accepts the embedded defaults, which read
    the shipped policy and rules files."""
    out = run([str(installed / "intake-gateway"), "check-config"], tmp_path)
    assert out.stdout.strip() == "embedded defaults: OK"


def test_sla_due_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    """`sla due` computes deadlines from the shipped policy (Moscow working calendar)."""
    out = run([str(installed / "intake-gateway"), "sla", "due", "--tier", "8/5", "--priority",
               "critical", "--received", "2026-11-25T07:00:00Z", "--json"], tmp_path)
    answer = json.loads(out.stdout)
    assert answer["registered_at"] == "2026-11-25T07:00:00Z"
    assert set(answer) >= {"registered_at", "reaction_due", "resolution_due"}


def test_migrations_and_templates_work_installed(installed: Path, tmp_path: Path) -> None:
    """`python -m gateway` from the wheel migrates a new database with the shipped migrations,
    then registers a mail and renders its acknowledgement from the shipped templates."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n\n'
                      f'[outgoing]\nmaildir = "{tmp_path / "outgoing"}"\n', encoding="utf-8")
    mail = tmp_path / "first.eml"
    mail.write_bytes(b"From: Ivan Petrov <ivan@acme.example>\r\nTo: support@example.com\r\n"
                     b"Subject: Messages are not delivered\r\nMessage-ID: <first@acme.example>\r\n"
                     b"Date: Wed, 25 Nov 2026 10:00:00 +0300\r\n\r\n"
                     b"Since this morning no messages are delivered.\r\n")
    python = str(installed / "python")
    run([python, "-m", "gateway", "--config", str(config), "ingest", "--acknowledge",
         str(mail)],
        tmp_path)
    out = run([python, "-m", "gateway", "--config", str(config), "tickets", "list", "--json"],
              tmp_path)
    [ticket] = json.loads(out.stdout)
    assert ticket["subject"] == "Messages are not delivered"
    sent = list((tmp_path / "outgoing").rglob("*"))
    assert any(path.is_file() and ticket["number"] in path.read_text(errors="replace")
               for path in sent)
