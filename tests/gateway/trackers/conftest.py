"""The session's Request Tracker (tests/gateway/trackers/rt_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.gateway.trackers.rt_server import RtServer, launch, rt_available


@pytest.fixture(scope="session")
def rt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtServer]:
    """One Request Tracker for the session (a few seconds to set up and start); skipped
    only where RT is not installed, and never in CI, which installs it."""
    if not rt_available():
        message = ("Request Tracker 5 is not installed (apt-get install request-tracker5 "
                   "rt5-db-sqlite rt5-standalone, as .ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = launch(tmp_path_factory.mktemp("request-tracker"))
    try:
        yield server
    finally:
        server.stop()
