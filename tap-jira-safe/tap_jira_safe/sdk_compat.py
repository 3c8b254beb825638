"""Every use of singer-sdk's private surface, one function per seam.

singer-sdk renames and reshapes its private members between releases (``is_flushed``
appeared in 0.54); keeping them here means an SDK bump is checked in one file, and
``tests/test_sdk_seams.py`` fails the day a seam moves. ruff's SLF001 is on for the rest
of the package.
"""

from __future__ import annotations

from typing import Any

from singer_sdk import Stream
from singer_sdk.helpers.types import Context
from typing_extensions import override


def write_state_now(stream: Stream) -> None:
    """Emit the stream's current state as a STATE message now, even though no record
    changed it (the SDK writes only a state it marked changed: ``is_flushed``)."""
    stream.state_manager.is_flushed = False
    stream._write_state_message()


def sync_children(stream: Stream, context: Context) -> None:
    """Run the child streams for ``context`` now (the SDK otherwise does so per record)."""
    stream._sync_children(context)


class SchemaOnce(Stream):
    """A stream that writes its SCHEMA message once per run: the SDK writes one per child
    sync (per batch of issues here), and each SCHEMA makes a downstream target flush."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema_written = False

    @override
    def _write_schema_message(self) -> None:
        if not self._schema_written:
            self._schema_written = True
            super()._write_schema_message()


def open_table_version(stream: Stream) -> int:
    """Start a full-table version as ``Stream.sync`` does with
    ``emit_activate_version_messages`` (its RECORD messages carry ``_stream_version``),
    in milliseconds where the SDK takes seconds (as pipelinewise taps do): two runs that
    start within one second would otherwise share a version, and a row deleted between
    them would never be retired (a target retires only versions older than the refresh)."""
    stream._stream_version = stream._initialized_at
    return stream._stream_version


def table_version(stream: Stream) -> int:
    """The version ``open_table_version`` started."""
    version = stream._stream_version
    assert version is not None, "no table version was opened"
    return version


def write_activate_version(stream: Stream, version: int) -> None:
    """An ACTIVATE_VERSION message, through the stream's maps as singer-sdk sends it."""
    stream._write_activate_version_message(version)


SEAMS: dict[str, tuple[type, str, tuple[str, ...]]] = {
    # seam -> (class, member, the parameters we pass, in order)
    "write_state_now": (Stream, "_write_state_message", ()),
    "sync_children": (Stream, "_sync_children", ("child_context",)),
    "SchemaOnce": (Stream, "_write_schema_message", ()),
    "write_activate_version": (Stream, "_write_activate_version_message", ("full_table_version",)),
}
