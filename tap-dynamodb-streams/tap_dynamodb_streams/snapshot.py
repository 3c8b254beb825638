"""Initial snapshot: a parallel Scan of the whole table (strongly consistent pages)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from tap_dynamodb_streams.client import AwsClients

_DONE = object()


def scan_table(aws: AwsClients, table: str, segments: int) -> Iterator[dict[str, Any]]:
    """Every item, read by ``segments`` threads; the first failure of any segment is raised."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=segments * 2)
    stop = threading.Event()

    def read(segment: int) -> None:
        try:
            for items in aws.scan_segment(table, segment, segments):
                if stop.is_set():
                    return
                pages.put(items)
        except BaseException as exc:
            pages.put(exc)
        finally:
            pages.put(_DONE)

    workers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(segments)]
    for worker in workers:
        worker.start()
    running = segments
    try:
        while running:
            page = pages.get()
            if page is _DONE:
                running -= 1
            elif isinstance(page, BaseException):
                raise page
            else:
                yield from page
    finally:
        stop.set()
        while any(w.is_alive() for w in workers):  # unblock writers waiting on a full queue
            try:
                pages.get_nowait()
            except queue.Empty:
                for worker in workers:
                    worker.join(timeout=0.05)
