"""Every use of a singer-sdk member that is not public API, one function per seam.

singer-sdk moves these between releases (``state_manager.is_flushed`` arrived in 0.54,
``_write_activate_version_message`` changed within 0.54.x). ``tests/test_sdk_seams.py`` checks
that each still exists with the signature used here, and that the private methods this
package overrides (``OVERRIDDEN``) still exist, so a release that breaks one fails there.
"""

from __future__ import annotations

from typing import Any

from singer_sdk import Stream, Tap

# Private singer-sdk methods this package overrides (with @override), by class.
OVERRIDDEN: dict[type, tuple[str, ...]] = {
    Stream: ("_increment_stream_state", "_generate_record_messages"),
    Tap: ("_validate_config",),
}


def write_state(stream: Stream) -> None:
    """A STATE message now (the SDK otherwise writes one only at its own moments)."""
    stream._write_state_message()


def mark_state_unflushed(stream: Stream) -> None:
    """The state changed: the SDK writes it after the next BATCH message and at the end."""
    stream.state_manager.is_flushed = False


def write_activate_version(stream: Stream, version: int) -> None:
    stream._write_activate_version_message(version)


def set_stream_version(stream: Stream, version: int | None) -> None:
    """The table version RECORD messages carry (a full-table snapshot's), or None."""
    stream._stream_version = version


def stream_version(stream: Stream) -> int | None:
    return stream._stream_version


def grow_schema(stream: Stream, attributes: dict[str, dict[str, Any]]) -> None:
    """Add properties to a stream's schema mid-sync and send the new SCHEMA message.

    The SDK has no public hook for a schema that grows: the input schema (catalog), the
    mapper's registration and the stream's maps are updated as the SDK's start of sync would.
    """
    stream.schema["properties"].update(attributes)
    input_schema = stream._input_schema
    if input_schema is not None and input_schema is not stream.schema:
        input_schema["properties"].update(
            {name: dict(schema) for name, schema in attributes.items()}
        )
    mapper = stream._tap.mapper
    mapper.register_raw_stream_schema(stream.name, stream.effective_schema, stream.primary_keys)
    stream._stream_maps = mapper.stream_maps[stream.name]
    stream._write_schema_message()
