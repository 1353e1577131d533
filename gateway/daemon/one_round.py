"""One round of processing and sending without listening: what `ingest` and friends run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.config.settings import LoadedSettings
from gateway.daemon.service import Gateway


def deliver_now(loaded: LoadedSettings,
                progress: Callable[[int], object] | None = None) -> int:
    """Process what is waiting and send what is due, once, without listening (CLI commands);
    PROGRESS is told how many inputs each batch handled.

    Safe beside a running daemon: outbox items are leased, so nothing is sent twice. The
    callers (`ingest`, `quarantine retry`) have brought the schema up to date already.
    """

    async def once() -> int:
        gateway = Gateway(loaded)
        sent = 0
        try:
            while handled := await gateway.process_once():
                if progress is not None:
                    progress(handled)
            while claimed := await gateway.outbox.run_once():
                sent += claimed
        finally:
            await gateway.delivery.close()
            if gateway.alert_delivery is not None:
                await gateway.alert_delivery.close()
            gateway.db.close()
        return sent

    return asyncio.run(once())
