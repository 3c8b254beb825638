"""Time zones: the emulator reads JQL text in the user's zone (DST gap and overlap included),
and tap-jira-safe misses nothing whatever the zone, across a DST change too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import (
    compare,
    issues_only_catalog,
    newest_by_key,
    run_tap,
)
from safe_singer_testing.emulators.jira.timefmt import parse_rendered


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


# 2024-11-03 in Los Angeles: 01:00-02:00 happens twice (PDT, then PST) from 08:00Z to 10:00Z
LA_FALL_BACK = ms("2024-11-03T07:30:00+00:00")
# 2024-03-31 in London: 01:00-02:00 does not exist (GMT -> BST at 01:00Z)
LONDON_SPRING = ms("2024-03-31T00:00:00+00:00")


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[JiraEmulator]:
    zone, first = request.param
    with JiraEmulator(issue_count=150, time_zone=zone, first_updated_ms=first) as jira:
        yield jira


def search_count(jira: JiraEmulator, jql: str) -> int:
    auth = (jira.settings.email, jira.settings.api_token)
    body = {"jql": jql, "maxResults": 5000}
    answer = requests.post(f"{jira.url}/rest/api/3/search/jql", json=body, auth=auth, timeout=10)
    answer.raise_for_status()
    return len(answer.json()["issues"])


def truth_count(jira: JiraEmulator, since_ms: int) -> int:
    return sum(1 for updated in jira.live_issues().values() if updated >= since_ms)


@pytest.mark.parametrize("emulator", [("America/Los_Angeles", LA_FALL_BACK)], indirect=True)
def test_emulator_reads_ambiguous_local_time_as_the_earlier_offset(emulator: JiraEmulator) -> None:
    # 01:30 exists twice; Jira (java.time) takes the earlier one, PDT: 08:30Z
    got = search_count(emulator, 'updated >= "2024-11-03 01:30"')
    assert got == truth_count(emulator, ms("2024-11-03T08:30:00+00:00"))
    assert got != truth_count(emulator, ms("2024-11-03T09:30:00+00:00"))


@pytest.mark.parametrize("emulator", [("Europe/London", LONDON_SPRING)], indirect=True)
def test_emulator_moves_a_time_in_the_dst_gap_forward(emulator: JiraEmulator) -> None:
    # 01:30 does not exist in London that night; java.time moves it forward to 02:30 BST
    assert search_count(emulator, 'updated >= "2024/03/31 01:30"') == truth_count(
        emulator, ms("2024-03-31T01:30:00+00:00")
    )


@pytest.mark.parametrize("emulator", [("America/Los_Angeles", LA_FALL_BACK)], indirect=True)
def test_emulator_renders_times_with_the_offset_of_the_moment(emulator: JiraEmulator) -> None:
    auth = (emulator.settings.email, emulator.settings.api_token)
    body = {"jql": "project in (ALPHA, BETA, GAMMA)", "fields": ["updated"], "maxResults": 100}
    issues: list[dict[str, Any]] = []
    while True:
        page = requests.post(
            f"{emulator.url}/rest/api/3/search/jql", json=body, auth=auth, timeout=10
        ).json()
        issues += page["issues"]
        if not page.get("nextPageToken"):
            break
        body["nextPageToken"] = page["nextPageToken"]
    offsets = {i["fields"]["updated"][-5:] for i in issues}
    assert offsets == {"-0700", "-0800"}
    truth = emulator.live_issues()
    assert all(parse_rendered(i["fields"]["updated"]) == truth[i["id"]] for i in issues)


@pytest.mark.parametrize("emulator", [("America/Los_Angeles", LA_FALL_BACK)], indirect=True)
def test_a_utc_text_literal_would_miss_issues_in_a_western_zone(emulator: JiraEmulator) -> None:
    """The bug this tap avoids: a UTC bookmark written as JQL text is read as local time."""
    bookmark = ms("2024-11-03T08:10:00+00:00")
    naive = search_count(emulator, 'updated >= "2024-11-03 08:10"')
    assert naive < truth_count(emulator, bookmark)
    assert search_count(emulator, f"updated >= {bookmark}") == truth_count(emulator, bookmark)


ZONES = [
    pytest.param(("UTC", LA_FALL_BACK), id="UTC"),
    pytest.param(("Asia/Kolkata", LA_FALL_BACK), id="Kolkata_+0530"),
    pytest.param(("America/Los_Angeles", LA_FALL_BACK), id="Los_Angeles_across_fall_back"),
    pytest.param(("Europe/London", LONDON_SPRING), id="London_across_spring_gap"),
]


@pytest.mark.parametrize("emulator", ZONES, indirect=True)
def test_tap_misses_nothing_in_any_user_zone(emulator: JiraEmulator) -> None:
    # resume from a bookmark in the middle of the data (inside the DST change where there is
    # one): every issue updated at or after it must come out, with its exact `updated`
    first_ms = min(emulator.live_issues().values())
    bookmark_ms = first_ms + 75 * emulator.settings.spacing_ms
    bookmark = datetime.fromtimestamp(bookmark_ms / 1000, UTC).isoformat(timespec="microseconds")
    state = {
        "bookmarks": {"issues": {"replication_key": "updated", "replication_key_value": bookmark}}
    }
    config = emulator.tap_config(search_lag_seconds=0, lookback_minutes=1, page_size=50)
    run = run_tap(config, state=state, catalog=issues_only_catalog())
    assert run.returncode == 0, run.stderr[-2000:]
    emitted = newest_by_key(run.records("issues"))
    since = {k: v for k, v in emulator.live_issues().items() if v >= bookmark_ms}
    assert len(since) > 50
    result = compare(since, set(), emitted)
    assert result.clean, result
    earliest = min(ms(r["updated"]) for r in emitted.values())
    assert earliest >= bookmark_ms - 60_000, "read more than the lookback before the bookmark"
    bookmark_after: Any = run.bookmark()
    assert bookmark_after >= bookmark
