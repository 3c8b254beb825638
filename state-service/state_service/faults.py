"""Fault injection for the crash tests: stop this process dead at a named point.

``STATE_SERVICE_FAULT=ACTION@POINT`` where ACTION is ``kill`` (SIGKILL to this process, so
nothing after the point runs, exactly as an outside ``kill -9`` landing there), ``pause``
(sleep until killed), ``delay:SECONDS`` (widen a race window) or ``error`` (raise, as a
database error would). POINTs: ``start:locked``
(the lease row read, inside the start transaction), ``start:before-commit``,
``start:after-commit``, ``bookmark:before-write`` (a STATE the target printed, so committed, not
yet stored), ``bookmark:after-commit``, ``finish:before-commit``. Unset in normal use.
"""

from __future__ import annotations

import os
import signal
import sys
import time

FAULT_ENV = "STATE_SERVICE_FAULT"


def fault_point(point: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    action, _, target = spec.partition("@")
    if target != point:
        return
    print(f"state-service: fault injection: {action} at {point}", file=sys.stderr, flush=True)
    if action.startswith("delay:"):
        time.sleep(float(action.removeprefix("delay:")))
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "error":
        raise RuntimeError(f"injected error at {point}")
    while action == "pause":
        time.sleep(3600)
