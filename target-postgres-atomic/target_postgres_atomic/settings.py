"""Settings a user could expect to take effect but the target does not implement: refused.

Peers' names (pipelinewise-target-postgres, MeltanoLabs target-postgres) get a pointer to ours;
any other unknown key is refused too, so a typo never silently changes what lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INSTEAD = {
    "schema_mapping": "use default_target_schema, or stream_maps with __alias__ to rename streams",
    "data_flattening_max_level": "use flattening_enabled: true with flattening_max_depth",
    "add_metadata_columns": "use add_record_metadata",
    "dbname": "use database",
    "primary_key_required": "streams without key_properties are appended, as load_method says",
    "default_target_schema_select_permission": "grants are not supported; grant them yourself",
    "process_activate_version_messages": "use activate_version",
    "ssh_tunnel": "SSH tunnels are not supported; open one yourself and set host and port",
    "dialect+driver": "only PostgreSQL is supported; use sqlalchemy_url or host/port/database",
}


def unsupported_settings(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """One error per configured key the target does not implement."""
    known = set(schema.get("properties", {}))
    errors = []
    for key in sorted(set(config) - known):
        hint = INSTEAD.get(key, "not a setting of target-postgres-atomic (see --about)")
        errors.append(f"setting '{key}' would be ignored, so it is refused: {hint}")
    return errors
