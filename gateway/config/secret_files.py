"""Secrets in the config file given as NAME_file or NAME_env, read where they point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fields that hold secrets: each may be given inline, as NAME_file or as NAME_env.
_SECRET_FIELDS = {"password", "admin_token", "secret", "client_secret", "token"}


def resolve_secrets(table: dict[str, Any], where: tuple[str | int, ...],
                     problems: list[tuple[tuple[str | int, ...], str]], base: Path) -> None:
    """Replace `x_file` / `x_env` keys by the secret they point at, in place, recursively."""
    for key in list(table):
        value = table[key]
        if isinstance(value, dict):
            resolve_secrets(value, (*where, key), problems, base)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    resolve_secrets(item, (*where, key, index), problems, base)
        for suffix in ("_file", "_env"):
            field_name = key.removesuffix(suffix)
            if key.endswith(suffix) and field_name in _SECRET_FIELDS:
                del table[key]
                secret = _read_secret(suffix, value, base)
                if isinstance(secret, str):
                    table[field_name] = secret
                else:
                    problems.append(((*where, key), secret.message))


@dataclass(frozen=True)
class _Missing:
    message: str


def _read_secret(suffix: str, reference: object, base: Path) -> str | _Missing:
    if not isinstance(reference, str) or not reference:
        return _Missing("expected a non-empty string")
    if suffix == "_env":
        value = os.environ.get(reference)
        return value.strip() if value else _Missing(f"environment variable {reference} is not set")
    # "${CREDENTIALS_DIRECTORY}/admin.token": systemd's LoadCredential= puts secrets there.
    reference = os.path.expandvars(reference)
    try:
        return (base / reference).read_text(encoding="utf-8").strip()
    except OSError as error:
        return _Missing(f"cannot read secret file: {error.strerror}")
