"""What the tap learns about the Jira site once per run: deployment, clock, user's zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tap_jira_safe.timeutil import parse_jira_time

if TYPE_CHECKING:
    from tap_jira_safe.client import JiraStream


@dataclass(frozen=True)
class Site:
    deployment: str  # "Cloud", "Server" or "DataCenter"
    server_time: datetime  # the sync's start, on Jira's clock
    time_zone: str  # the API user's zone (Jira reads JQL text literals in it)

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"


def probe(stream: JiraStream) -> Site:
    """``/rest/api/2/serverInfo`` and ``/myself``, cached on the tap for the whole run."""
    cached: Site | None = getattr(stream._tap, "_jira_site", None)
    if cached is not None:
        return cached
    info = stream.call("GET", "/rest/api/2/serverInfo")
    me = stream.call("GET", "/rest/api/2/myself")
    site = Site(
        deployment=str(info.get("deploymentType", "Cloud")),
        server_time=parse_jira_time(info["serverTime"]),
        time_zone=str(me.get("timeZone") or "UTC"),
    )
    stream.logger.info(
        "Jira %s, server time %s, API user's time zone %s (JQL uses epoch ms, not text)",
        site.deployment,
        site.server_time.isoformat(),
        site.time_zone,
    )
    stream._tap._jira_site = site  # type: ignore[attr-defined]
    return site
