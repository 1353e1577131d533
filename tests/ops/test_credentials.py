"""Secrets from systemd credentials: `*_file` paths expand ${CREDENTIALS_DIRECTORY}."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import parse_settings


def test_secret_file_under_credentials_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "admin.token").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = tmp_path / "config.toml"
    text = '[http]\nadmin_token_file = "${CREDENTIALS_DIRECTORY}/admin.token"\n'
    settings = parse_settings(text, config)
    assert settings.http.admin_token is not None
    assert settings.http.admin_token.get_secret_value() == "s3cret"
