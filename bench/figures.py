"""One machine-readable line per compared figure, gathered by `bench/run.py` (`make bench`).

A bench script calls `figure(...)` beside its own table. The line is `BENCH-FIGURE ` and a JSON
object carrying the load average at the moment the figure was taken (the machine is shared).
"""

from __future__ import annotations

import json
import os

PREFIX = "BENCH-FIGURE "


def figure(
    component: str,
    measure: str,
    peer: str,
    ours: float,
    theirs: float,
    *,
    higher_is_better: bool,
) -> None:
    """Print one comparison; ``ratio`` > 1 means ours is better (None when a side is 0)."""
    better, worse = (ours, theirs) if higher_is_better else (theirs, ours)
    line = {
        "component": component,
        "measure": measure,
        "peer": peer,
        "ours": ours,
        "theirs": theirs,
        "ratio": better / worse if better and worse else None,
        "higher_is_better": higher_is_better,
        "load": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(PREFIX + json.dumps(line), flush=True)
