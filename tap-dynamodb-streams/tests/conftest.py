"""A fresh moto + Streams endpoint per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.emulators.dynamodb_streams import Stack
from tests.support.dynamodb import running_stack


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s
