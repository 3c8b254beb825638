"""singer-sdk's private surface, in one place: one function or entry per seam the target uses.

singer-sdk moves private members between releases (`_handle_termination` changes in 0.55), so
the target touches them only here; tests/test_sdk_seams.py checks every entry below against
the installed singer-sdk. Ruff's private-member rule (SLF001) keeps the rest of the package out.
"""

from __future__ import annotations

from singer_sdk.io_base import GenericSingerReader
from singer_sdk.target_base import Target

OVERRIDES: dict[tuple[type, str], tuple[str, ...]] = {
    (Target, "_process_schema_message"): ("self", "message_dict"),
    (Target, "_process_record_message"): ("self", "message_dict"),
    (Target, "_process_state_message"): ("self", "message_dict"),
    (Target, "_process_activate_version_message"): ("self", "message_dict"),
    (Target, "_process_batch_message"): ("self", "message_dict"),
    (Target, "_handle_termination"): ("self", "signum", "frame"),
    (Target, "_validate_config"): ("self", "raise_errors"),
    (Target, "process_endofpipe"): ("self",),
    (GenericSingerReader, "process_lines"): ("self", "file_input", "callbacks"),
    (GenericSingerReader, "deserialize_json"): ("self", "line"),
}
"""singer-sdk methods the target and its reader override, with the parameters they take."""

CALLS: dict[tuple[type, str], tuple[str, ...]] = {
    (Target, "_assert_line_requires"): ("self", "message_dict", "requires"),
}
"""Private singer-sdk methods the target calls (through the functions below)."""


def assert_line_requires(target: Target, message_dict: dict, requires: set[str]) -> None:
    """singer-sdk's check that a message has the keys its type needs (its error and text)."""
    target._assert_line_requires(message_dict, requires=requires)
