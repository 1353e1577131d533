"""One pass of processing and sending, without listening: what one-shot CLI commands run."""

from __future__ import annotations

import asyncio

from gateway.config.settings import LoadedSettings
from gateway.daemon.service import Gateway


def deliver_now(loaded: LoadedSettings) -> int:
    """Process what is waiting and send what is due, once, without listening (CLI commands).

    Safe beside a running daemon: outbox items are leased, so nothing is sent twice. The
    callers (`ingest`, `quarantine retry`) have brought the schema up to date already.
    """

    async def once() -> int:
        gateway = Gateway(loaded)
        sent = 0
        try:
            while await gateway.process_once():
                pass
            while claimed := await gateway.outbox.run_once():
                sent += claimed
        finally:
            await gateway.delivery.close()
            if gateway.alert_delivery is not None:
                await gateway.alert_delivery.close()
            gateway.db.close()
        return sent

    return asyncio.run(once())
