"""The private singer-sdk attributes ``sdk_compat.open_table_version`` sets and reads still
exist, and RECORD messages still carry ``_stream_version``: else full-table records would
lose their table version and the target could not tell a refresh's rows."""

import inspect

from singer_sdk import Stream


def test_the_stream_version_attributes_still_exist() -> None:
    init = inspect.getsource(Stream.__init__)
    assert "self._stream_version" in init and "self._initialized_at" in init


def test_records_still_carry_the_stream_version() -> None:
    assert "version=self._stream_version" in inspect.getsource(Stream._generate_record_messages)  # noqa: SLF001


def test_two_runs_started_within_one_second_have_distinct_increasing_versions() -> None:
    from types import SimpleNamespace

    from tap_jira_safe import sdk_compat

    first, second = (
        SimpleNamespace(_initialized_at=ms) for ms in (1_764_975_600_001, 1_764_975_600_999)
    )
    assert sdk_compat.open_table_version(first) < sdk_compat.open_table_version(second)  # type: ignore[arg-type]
