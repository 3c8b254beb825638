"""A fresh moto + Streams endpoint per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safe_singer_testing.dynamodb import running_stack
from safe_singer_testing.emulators.dynamodb_streams import Stack


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s
