"""The singer-sdk standard target test suite, against a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import get_target_test_class
from target_postgres_atomic.target import TargetPostgresAtomic

from safe_singer_testing.postgres import create_database, drop_database, find_server

# The suite's config is fixed when the class is built, so the database is made at import.
_SERVER = find_server()
_DATABASE = create_database(_SERVER, prefix="std")

# encoded_string_data sends NUL characters, which PostgreSQL text cannot hold: with the
# default settings that is a loud error (see test_bad_input), so the suite opts in.
TestStandardTargetSuite = get_target_test_class(
    TargetPostgresAtomic,
    config={**_DATABASE.target_config(), "sanitize_null_text_characters": True},
)


@pytest.fixture(scope="module", autouse=True)
def _drop_suite_database() -> Iterator[None]:
    yield
    drop_database(_DATABASE, _SERVER)
