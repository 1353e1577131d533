"""`[[trackers]]` is validated like every table: precise errors naming the key, no secret echoed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.settings import parse_settings
from rules.config_errors import ConfigError
from tests.conftest import config_text, free_port


def test_tracker_settings_are_read_with_the_token_from_a_file(tmp_path: Path) -> None:
    """The token comes from token_file; defaults fill the rest; the URL loses a trailing
    slash (the API path is appended to it)."""
    (tmp_path / "rt.token").write_text("1-14-secretsecret\n", encoding="utf-8")
    text = config_text("sqlite://", tmp_path, free_port()) + (
        '[[trackers]]\nname = "rt"\nurl = "https://rt.example.com/rt/"\nqueue = "Support"\n'
        'token_file = "rt.token"\n')
    settings = parse_settings(text, tmp_path / "config.toml")
    tracker = settings.trackers[0]
    assert tracker.token.get_secret_value() == "1-14-secretsecret"
    assert tracker.url == "https://rt.example.com/rt"
    assert tracker.priority_map == {"critical": 100, "high": 75, "medium": 50, "low": 0}
    assert tracker.poll_interval_s == 30
    assert "secretsecret" not in repr(settings)


@pytest.mark.parametrize(("table", "expected"), [
    ('url = "ftp://rt.example.com"\nqueue = "S"\ntoken = "t"', "expected an http(s) URL"),
    ('url = "https://rt"\nqueue = "S"\ntoken_env = "NO_SUCH_RT_TOKEN_VARIABLE"',
     "environment variable NO_SUCH_RT_TOKEN_VARIABLE is not set"),
    ('url = "https://rt"\nqueue = "S"\ntoken = "t"\npriority_map = {critical = 9}',
     "missing: high, medium, low"),
    ('url = "https://rt"\nqueue = "S"\ntoken = "t"\nkind = "jira"', "request-tracker"),
    ('url = "https://rt"\ntoken = "t"', "queue"),
])
def test_bad_tracker_settings_name_the_problem(tmp_path: Path, table: str, expected: str) -> None:
    """Each mistake is refused with words that say what is wrong."""
    text = config_text("sqlite://", tmp_path, free_port()) + f'[[trackers]]\nname = "rt"\n{table}\n'
    with pytest.raises(ConfigError) as refused:
        parse_settings(text, tmp_path / "config.toml")
    assert expected in str(refused.value)


def test_check_config_never_echoes_the_token(tmp_path: Path) -> None:
    """check-config exits 2 on a bad tracker (two of the same name) without showing the
    token."""
    path = tmp_path / "config.toml"
    tracker = ('[[trackers]]\nname = "rt"\nurl = "https://rt"\nqueue = "S"\n'
               'token = "1-14-do-not-show-me"\npoll_interval_s = -1\n')
    path.write_text(config_text("sqlite://", tmp_path, free_port()) + tracker + tracker,
                    encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path),
                             "check-config"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "poll_interval_s" in result.stderr
    assert "do-not-show-me" not in result.stderr
