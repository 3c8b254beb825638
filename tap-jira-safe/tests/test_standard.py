"""singer-sdk's standard tap tests for tap-jira-safe, against the Jira emulator over HTTP.

The emulator starts when this module is imported (the test class needs its URL in the
config) and stops when the module's tests are done.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import get_tap_test_class

from safe_singer_testing.emulators.jira import JiraEmulator
from tap_jira_safe.tap import TapJiraSafe

EMULATOR = JiraEmulator(issue_count=12, page_cap_fields=5).start()

TestTapJiraSafeStandard = get_tap_test_class(
    TapJiraSafe,
    config=EMULATOR.tap_config(search_lag_seconds=0, lookback_minutes=1, page_size=5),
)


@pytest.fixture(scope="module", autouse=True)
def _stop_emulator() -> Iterator[None]:
    yield
    EMULATOR.stop()
