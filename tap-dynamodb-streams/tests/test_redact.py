"""The configured credentials are masked in any log line, wherever a library puts them (the
end-to-end tests show botocore's own lines; these values appear in no pattern it matches)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from safe_singer_common import redact

from safe_singer_testing.emulators.dynamodb_streams import Stack
from tap_dynamodb_streams.tap import TapDynamoDBStreams

KEY_ID = "AKIAEXAMPLEKEY123456"
SECRET = KEY_ID + "-and-the-rest-of-a-secret"  # contains another secret: masked as a whole


@pytest.fixture
def masking(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tap's masking, for this test only (it is process-wide once a tap is built)."""
    monkeypatch.setattr(redact, "_logged_secrets", set())
    previous = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(previous)


@pytest.mark.usefixtures("masking")
def test_configured_credentials_are_masked_in_every_log_line(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.create_table("t")
    config = stack.tap_config(["t"], aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    TapDynamoDBStreams(config=config, validate_config=True)
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("signing with %s and %s", SECRET, KEY_ID)
        try:
            raise ValueError(f"bad key {SECRET}")
        except ValueError:
            logging.getLogger("some.library").exception("failed")
    text = caplog.text
    assert "signing with *** and ***" in text and "bad key ***" in text, text
    assert "the-rest-of-a-secret" not in text and KEY_ID not in text
