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
