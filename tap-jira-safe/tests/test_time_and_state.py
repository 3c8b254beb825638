"""Jira time parsing and the compact id runs kept in state (package API)."""

from datetime import timedelta

import requests

from tap_jira_safe.idruns import decode_ids, encode_ids
from tap_jira_safe.issues import delete_version
from tap_jira_safe.ratelimit import pacing_delay, reset_delay, server_wait
from tap_jira_safe.reconcile import archived_to_recheck
from tap_jira_safe.timeutil import iso_utc, parse_jira_time


def test_jira_offsets_without_colon_become_utc() -> None:
    moment = parse_jira_time("2024-11-03T01:30:00.250-0800")
    assert iso_utc(moment) == "2024-11-03T09:30:00.250000+00:00"
    assert iso_utc(parse_jira_time("2024-11-03T01:30:00.250-0700")) < iso_utc(moment)


def test_live_ids_round_trip_as_runs() -> None:
    ids = {10001, 10002, 10003, 10007, 10009, 10010}
    runs = encode_ids(ids)
    assert runs == [[10001, 10003], [10007, 10007], [10009, 10010]]
    assert decode_ids(runs) == ids


def test_delete_version_is_jira_time_and_never_older_than_the_issue() -> None:
    server = parse_jira_time("2024-11-03T01:30:00.250-0800")
    assert delete_version(server, None) == iso_utc(server)
    assert delete_version(server, server - timedelta(minutes=10)) == iso_utc(server)
    later = server + timedelta(seconds=3)  # an edit a verification fetch saw after the start
    assert delete_version(server, later) == iso_utc(later + timedelta(milliseconds=1))


def test_rate_limit_reset_is_measured_on_jiras_clock_not_the_hosts() -> None:
    response = requests.Response()
    response.headers["Date"] = "Mon, 03 Nov 2031 09:30:00 GMT"  # Jira's clock, far from ours
    response.headers["X-RateLimit-Reset"] = "2031-11-03T09:30:02Z"
    assert reset_delay(response) == 2.0


def _limited(date: str, reset: str, remaining: str, status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(
        {"Date": date, "X-RateLimit-Reset": reset, "X-RateLimit-Remaining": remaining}
    )
    return response


def test_a_minute_precision_reset_this_minute_waits_to_the_minutes_end() -> None:
    """Jira names the reset to the minute: ``09:30`` read at 09:30:20 is "within this
    minute", so the spent quota is waited out to 09:31:00, not taken as reset already."""
    date = "Mon, 03 Nov 2031 09:30:20 GMT"
    for reset in ("2031-11-03T09:30Z", "2031-11-03T09:30:00Z", "2031-11-03T09:30:00.000+00:00"):
        assert reset_delay(_limited(date, reset, "0")) == 40.0, reset
        assert pacing_delay(_limited(date, reset, "0")) == 30.0  # our pacing's ceiling
        assert server_wait(_limited(date, reset, "0", status=429), oauth=False) == 40.0


def test_a_spent_quota_never_waits_zero_even_when_its_reset_looks_past() -> None:
    past = _limited("Mon, 03 Nov 2031 09:32:20 GMT", "2031-11-03T09:30Z", "0")
    assert reset_delay(past) == 0.0
    assert pacing_delay(past) == 1.0
    past.status_code = 429
    assert server_wait(past, oauth=False) == 1.0
    assert pacing_delay(_limited("Mon, 03 Nov 2031 09:32:20 GMT", "2031-11-03T09:30Z", "5")) == 0


def test_archived_rechecks_rotate_so_each_is_seen_within_ceil_n_over_per_run_runs() -> None:
    archived = {10001, 10002, 10005, 10009, 10010}
    state: dict[str, object] = {}
    seen = [archived_to_recheck(state, archived, 2) for _ in range(3)]
    assert all(len(batch) == 2 for batch in seen)
    assert set().union(*seen) == archived
    assert archived_to_recheck({}, archived, 10) == archived
