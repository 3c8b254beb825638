"""The heartbeat: its own thread, its own pooled connection, fenced like every other write."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from state_service.lease import Lease, LeaseLost, heartbeat
from state_service.store import Store


class Heartbeat(threading.Thread):
    """Beats every ``interval`` seconds; on a lost lease records why and calls ``on_lost`` once."""

    def __init__(
        self, store: Store, lease: Lease, interval: float, on_lost: Callable[[str], None]
    ) -> None:
        super().__init__(name=f"heartbeat-{lease.pipeline}", daemon=True)
        self.store, self.lease, self.interval, self.on_lost = store, lease, interval, on_lost
        self.lost: str | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                heartbeat(self.store, self.lease)
            except LeaseLost as exc:
                self.lost = str(exc)
                self.on_lost(self.lost)
                return
            except SQLAlchemyError as exc:
                # A transient database fault: the lease still has (lease - interval) seconds.
                print(f"state-service: heartbeat failed, will retry: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
