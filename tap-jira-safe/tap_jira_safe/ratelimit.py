"""How long Jira tells us to wait, read from its headers.

Jira Cloud enforces a per-second burst limit (every caller) and, for OAuth 2.0 (3LO),
Forge and Connect apps, an hourly points-based quota; API-token traffic is governed by the
burst limits only (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/).
A 429 carries ``Retry-After`` (seconds); the quota sends ``Beta-RateLimit-Policy:
"<name>";q=<points>;w=<window s>`` and ``Beta-RateLimit: "<name>";r=<left>;t=<s to reset>``,
and ``X-RateLimit-Reset`` is an ISO 8601 time with minute precision.
"""

from __future__ import annotations

import contextlib
import math
import random
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import requests

MAX_BACKOFF_S = 30.0  # our own backoff's ceiling, when Jira names no wait
# the least wait while the quota is spent: a reset already past on Jira's clock (a minute-
# precision time, a skewed Date) must not turn into requests sent back to back into it
MIN_SPENT_WAIT_S = 1.0


def backoff_wait(attempt: int) -> float:
    """Exponential backoff with jitter (half fixed, half random), capped at 30 s."""
    ceiling = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def server_wait(response: requests.Response, *, oauth: bool) -> float | None:
    """The wait a refused request was told to take, or None when Jira named none.

    ``Retry-After`` is honoured exactly (whole seconds), else ``X-RateLimit-Reset`` on a
    429. An OAuth app whose points quota is spent waits for the window's reset (``t`` of
    ``Beta-RateLimit``, or the reset time), never less than ``Retry-After``: retrying
    into an exhausted hourly quota only spends the wait again.
    """
    waits: list[float] = []
    retry_after = seconds(response.headers.get("Retry-After"))
    if retry_after is not None:
        waits.append(max(retry_after, 0.0))
    if response.status_code == 429 and (oauth or not waits):
        reset = reset_delay(response)
        if reset is not None:
            waits.append(max(reset, MIN_SPENT_WAIT_S))
    if oauth:
        window = quota_window(response)
        if window is not None and window[0] <= 0:
            waits.append(window[1])
    return max(waits) if waits else None


def seconds(text: str | None) -> float | None:
    """A header's number of seconds; None for anything else, ``nan`` too (a NaN would pass
    every cap and then crash the sleep). Infinity stays: ``max_server_wait_seconds`` refuses it."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(value) else value


def reset_delay(response: requests.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (an ISO 8601 time), if the header is there.

    Jira gives it to the minute (``2031-11-03T09:30Z``): the quota resets at some moment
    within that minute, so a time without seconds (or with ``:00``) means its minute's end;
    waiting only to its start would retry into a spent quota for up to a minute.
    Measured from the response's ``Date`` (Jira's clock, like the reset time), not the tap
    host's clock, which may be minutes off; the host clock only when ``Date`` is missing.
    """
    reset = response.headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.second == 0 and moment.microsecond == 0:
        moment += timedelta(minutes=1)
    now = datetime.now(timezone.utc)
    with contextlib.suppress(TypeError, ValueError):
        date = parsedate_to_datetime(response.headers.get("Date") or "")
        now = date if date.tzinfo else date.replace(tzinfo=timezone.utc)
    return max((moment - now).total_seconds(), 0.0)


def quota_window(response: requests.Response) -> tuple[float, float] | None:
    """``(points left, seconds to the window's reset)`` from ``Beta-RateLimit``."""
    header = response.headers.get("Beta-RateLimit", "")
    params = dict(part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    left, reset = seconds(params.get("r")), seconds(params.get("t", "1"))
    return None if left is None or reset is None else (left, reset)


def pacing_delay(response: requests.Response) -> float:
    """A pause that spreads requests when the burst quota is nearly used up (never more
    than our backoff ceiling: it is a courtesy, not an order)."""
    remaining = response.headers.get("X-RateLimit-Remaining")
    near = response.headers.get("X-RateLimit-NearLimit", "").lower() == "true"
    if remaining is None and not near:
        return 0.0
    delay = reset_delay(response) or 0.0
    if remaining is not None and remaining.isdigit() and int(remaining) > 0:
        delay = delay / (int(remaining) + 1) if near else 0.0
    elif remaining == "0":
        delay = max(delay, MIN_SPENT_WAIT_S)
    return min(delay, MAX_BACKOFF_S)
