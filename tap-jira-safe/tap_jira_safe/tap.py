"""The tap-jira-safe Tap class: settings and the list of streams."""

from __future__ import annotations

import os
import sys
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from typing_extensions import override

from tap_jira_safe.errors import TapJiraSafeError
from tap_jira_safe.redact import redacted, redacted_error
from tap_jira_safe.settings import SCHEMA, Settings
from tap_jira_safe.shared import TapParts
from tap_jira_safe.site import Site


class TapJiraSafe(Tap):
    """Singer tap for Jira Cloud (REST v3) and Jira Server/Data Center (REST v2)."""

    name = "tap-jira-safe"
    message_writer_class = MsgSpecWriter  # singer-sdk[msgspec]: the fast message writer

    config_jsonschema = SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._parts: TapParts | None = None
        super().__init__(*args, **kwargs)

    @property
    def parts(self) -> TapParts:
        """Settings, the site and the issues' side data: built once, handed to each stream."""
        if self._parts is None:
            self._parts = TapParts(Settings.from_config(self.config), Site(self.logger))
        return self._parts

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """singer-sdk's messages quote the bad value, which may be a secret: redact them."""
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            raise redacted_error(exc, self._config) from None
        return redacted(errors, self._config, self.config_jsonschema)

    @override
    def discover_streams(self) -> list[Stream]:
        from tap_jira_safe.stream_types import STREAM_TYPES

        return [stream_class(self, self.parts) for stream_class in STREAM_TYPES]


def main() -> None:
    """The console script: errors this tap raises on purpose (a request that failed for
    good, a refused reconciliation, a window that would not verify) end the run with one
    line and exit code 1; the traceback only with ``TAP_JIRA_SAFE_DEBUG=1``."""
    try:
        TapJiraSafe.cli()
    except (FatalAPIError, TapJiraSafeError) as exc:
        if os.environ.get("TAP_JIRA_SAFE_DEBUG"):
            raise
        print(f"tap-jira-safe: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
