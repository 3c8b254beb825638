"""The tap-dynamodb-streams Tap class: settings and one stream per table."""

from __future__ import annotations

import atexit
import functools
import sys
from typing import Any

from safe_singer_common import redact
from safe_singer_common.plugin import refuse_bad_config, run_plugin
from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import Message, RecordMessage
from typing_extensions import override

from tap_dynamodb_streams.errors import AwsCallFailed
from tap_dynamodb_streams.lineage import StreamGapError
from tap_dynamodb_streams.settings import CONFIG_SCHEMA, TapSettings
from tap_dynamodb_streams.streams import AwsCallError, NoProgress, UnreadableEvent

PENDING_BYTES = 1 << 16
# Errors this tap raises on purpose (a gap in the stream, AWS refusing for good, an event it
# cannot convert, a run that could save no progress): one line and exit code 1.
REFUSALS = (StreamGapError, AwsCallError, AwsCallFailed, UnreadableEvent, NoProgress)


class RecordBufferingWriter(MsgSpecWriter):
    """singer-sdk's msgspec writer, without a write system call (and flush) per RECORD.

    RECORD lines gather in memory (up to ``PENDING_BYTES``); every other message (STATE,
    SCHEMA, ACTIVATE_VERSION, BATCH) goes out together with them and is flushed, so a STATE
    reaches stdout with every record before it and never waits behind them. A process killed
    before that STATE loses only records no STATE covers; any other exit writes them out.
    Our own buffer, since ``PYTHONUNBUFFERED`` (common in containers) unbuffers stdout.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self.flush)

    @override
    def write_message(self, message: Message) -> None:
        self._pending += self.format_message(message)  # copied: the encoder reuses its buffer
        if not isinstance(message, RecordMessage) or len(self._pending) >= PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            sys.stdout.buffer.write(self._pending)
            sys.stdout.flush()
            self._pending.clear()


class TapDynamoDBStreams(Tap):
    """Singer tap that reads DynamoDB Streams change events, one Singer stream per table."""

    name = "tap-dynamodb-streams"
    message_writer_class = RecordBufferingWriter  # singer-sdk[msgspec]: the fast writer

    config_jsonschema = CONFIG_SCHEMA

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """A bad or unknown setting is refused in every mode, --discover too (discovery
        describes the tables), without quoting a secret value."""
        return refuse_bad_config(self, super()._validate_config)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        redact.install()  # before the first AWS call logs anything
        super().__init__(*args, **kwargs)
        redact.forget_in_logs(redact.secret_settings(self.config, self.config_jsonschema))

    @functools.cached_property
    def settings(self) -> TapSettings:
        """Built on first use, after singer-sdk validated the config and filled its defaults."""
        return TapSettings.from_config(self.config)

    @override
    def discover_streams(self) -> list[Stream]:
        from tap_dynamodb_streams.streams import discover_table_streams

        return discover_table_streams(self, self.settings)


def main() -> None:
    """The console script: a refusal ends the run with one line, ``tap-dynamodb-streams:
    error: ...``, and exit code 1; the traceback only with ``TAP_DYNAMODB_STREAMS_DEBUG=1``."""
    run_plugin(TapDynamoDBStreams, REFUSALS)


if __name__ == "__main__":
    main()
