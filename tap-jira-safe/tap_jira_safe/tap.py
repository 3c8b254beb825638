"""The tap-jira-safe Tap class: settings and the list of streams."""

from __future__ import annotations

from typing import Any

from safe_singer_common.plugin import refuse_bad_config, run_plugin
from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import FatalAPIError
from typing_extensions import override

from tap_jira_safe.errors import TapJiraSafeError
from tap_jira_safe.settings import SCHEMA, Settings
from tap_jira_safe.shared import TapParts
from tap_jira_safe.site import Site

# Errors this tap raises on purpose (a request that failed for good, a refused
# reconciliation, a window that would not verify): one line and exit code 1.
REFUSALS = (FatalAPIError, TapJiraSafeError)


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
        """A bad or unknown setting is refused in every mode, --discover too (discovery asks
        the server), without quoting a secret value."""
        return refuse_bad_config(self, super()._validate_config)

    @override
    def discover_streams(self) -> list[Stream]:
        from tap_jira_safe.stream_types import STREAM_TYPES

        return [stream_class(self, self.parts) for stream_class in STREAM_TYPES]


def main() -> None:
    """The console script: a refusal ends the run with one line, ``tap-jira-safe: error:
    ...``, and exit code 1; the traceback only with ``TAP_JIRA_SAFE_DEBUG=1``."""
    run_plugin(TapJiraSafe, REFUSALS)


if __name__ == "__main__":
    main()
