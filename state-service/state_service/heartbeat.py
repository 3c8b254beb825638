"""The heartbeat: its own thread, its own pooled connection, fenced like every other write."""

from __future__ import annotations

import threading
from collections.abc import Callable

from state_service.errors import DatabaseUnavailable
from state_service.lease import Lease, LeaseLost, heartbeat
from state_service.store import Store


class Heartbeat(threading.Thread):
    """Beats every ``interval`` seconds; on a lost lease records why and calls ``on_lost`` once.

    A heartbeat retries transient database faults itself while the lease is surely held; one
    that still fails means the lease may be lost, which is treated as lost.
    """

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
            except DatabaseUnavailable as exc:
                self.lost = f"heartbeat failed until the lease may have run out: {exc}"
            if self.lost is not None:
                self.on_lost(self.lost)
                return

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
