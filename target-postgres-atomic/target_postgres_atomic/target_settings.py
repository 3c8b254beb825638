"""The run's settings as one frozen object, built once from the validated config.

Every default comes from the settings schema (settings.CONFIG_SCHEMA), so no module repeats
one; modules read these fields, never the config dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_postgres_atomic.settings import CONFIG_SCHEMA, activate_version_enabled

SCHEMA_DEFAULTS: dict[str, Any] = {
    name: spec["default"] for name, spec in CONFIG_SCHEMA["properties"].items() if "default" in spec
}


@dataclass(frozen=True)
class TargetSettings:
    """What the target's own code reads of its settings (connection settings stay with
    connector.py, stream maps with singer-sdk's mapper)."""

    load_method: str
    default_target_schema: str | None
    batch_size_rows: int
    add_record_metadata: bool
    validate_records: bool
    hard_delete: bool
    activate_version: bool
    sanitize_null_text_characters: bool
    interpret_content_encoding: bool
    lock_timeout: float
    tombstone_retention_days: float
    version_columns: Mapping[str, str | None]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetSettings:
        values = {**SCHEMA_DEFAULTS, **config}
        return cls(
            load_method=values["load_method"],
            default_target_schema=values.get("default_target_schema"),
            # 0 (or null) rows per batch means the schema's default, not "commit every record".
            batch_size_rows=values["batch_size_rows"] or SCHEMA_DEFAULTS["batch_size_rows"],
            add_record_metadata=bool(values["add_record_metadata"]),
            validate_records=bool(values["validate_records"]),
            hard_delete=bool(values["hard_delete"]),
            # singer-sdk's process_activate_version_messages means the same.
            activate_version=activate_version_enabled(values),
            sanitize_null_text_characters=bool(values["sanitize_null_text_characters"]),
            interpret_content_encoding=bool(values["interpret_content_encoding"]),
            lock_timeout=float(values["lock_timeout"]),
            tombstone_retention_days=float(values["tombstone_retention_days"]),
            version_columns=dict(values.get("version_columns") or {}),
        )

    @property
    def overwrite(self) -> bool:
        return self.load_method == "overwrite"

    @property
    def upsert(self) -> bool:
        """Merge on key properties (overwrite merges too); append-only always inserts."""
        return self.load_method != "append-only"

    @property
    def state_schema(self) -> str:
        """Where the committed STATE is kept: the target schema, else public."""
        return self.default_target_schema or "public"
