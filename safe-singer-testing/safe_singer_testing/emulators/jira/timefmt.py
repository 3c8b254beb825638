"""Jira's time rendering and the date literals JQL accepts, in the querying user's zone."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

_TEXT_FORMATS = (
    (re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}$"), "%Y/%m/%d %H:%M"),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$"), "%Y-%m-%d %H:%M"),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "%Y/%m/%d"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
)
_RELATIVE = re.compile(r"^([-+]?)(\d+)([wdhm])$")
_UNIT_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000}


def render(ms: int, zone: str) -> str:
    """Render epoch milliseconds like Jira does: ``2024-11-29T10:44:51.887-0800``."""
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone))
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{moment:%z}"


def parse_rendered(text: str) -> int:
    """Epoch milliseconds of a time rendered by :func:`render` (or ISO 8601)."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def local_to_ms(moment: datetime, zone: str) -> int:
    """A wall-clock time in ``zone`` to epoch ms.

    A time inside a DST gap is moved forward by the gap and an ambiguous time takes the
    earlier offset, as java.time (and so Jira) resolves them.
    """
    aware = moment.replace(tzinfo=ZoneInfo(zone), fold=0)
    return round(aware.timestamp() * 1000)


def literal_to_ms(literal: str, zone: str, now_ms: int) -> int:
    """The epoch ms a JQL date literal stands for, read in the user's zone.

    Epoch-millisecond numbers are absolute; text forms have minute granularity.
    """
    text = literal.strip()
    if re.fullmatch(r"\d{10,}", text):
        return int(text)
    relative = _RELATIVE.match(text)
    if relative:
        sign = -1 if relative.group(1) == "-" else 1
        return now_ms + sign * int(relative.group(2)) * _UNIT_MS[relative.group(3)]
    for pattern, fmt in _TEXT_FORMATS:
        if pattern.match(text):
            return local_to_ms(datetime.strptime(text, fmt), zone)
    raise ValueError(
        f"Date value '{literal}' for field 'updated' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
        "format e.g. '-5d', '4w 2d'."
    )
