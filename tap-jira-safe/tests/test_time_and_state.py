"""Jira time parsing and the compact id runs kept in state (package API)."""

from tap_jira_safe.issues import decode_ids, encode_ids
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
