"""The target's settings schema, and the peers' settings it refuses (with what to use instead).

Settings a user could expect to take effect but the target does not implement are refused.
Peers' names (pipelinewise-target-postgres, MeltanoLabs target-postgres) get a pointer to ours;
any other unknown key is refused too, so a typo never silently changes what lands.
"""

from __future__ import annotations

from singer_sdk import typing as th

DEFAULT_BATCH_SIZE_ROWS = 100_000

CONFIG_SCHEMA: dict = th.PropertiesList(
    th.Property(
        "sqlalchemy_url",
        th.StringType,
        secret=True,
        description="SQLAlchemy URL; overrides host/port/user/password/database.",
    ),
    th.Property("host", th.StringType, description="Server host, or a Unix socket folder."),
    th.Property("port", th.IntegerType, default=5432, description="Server port."),
    th.Property("user", th.StringType, description="Login user."),
    th.Property("password", th.StringType, secret=True, description="Login password."),
    th.Property("database", th.StringType, description="Database name."),
    th.Property(
        "default_target_schema",
        th.StringType,
        description="Schema for the tables; defaults to the stream's schema or public.",
    ),
    th.Property(
        "load_method",
        th.StringType,
        default="upsert",
        allowed_values=["append-only", "upsert", "overwrite"],
        description="upsert: merge on key properties (streams without keys append); "
        "append-only: always insert; overwrite: replace each table with this run's rows, "
        "swapped in in one transaction at the end.",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=DEFAULT_BATCH_SIZE_ROWS,
        description="Buffered records (all streams) that trigger a commit.",
    ),
    th.Property(
        "add_record_metadata",
        th.BooleanType,
        default=False,
        description="Add _sdc_extracted_at, _sdc_received_at, _sdc_batched_at, "
        "_sdc_sequence columns.",
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=True,
        description="Check every record's JSON types against its schema (in SQL, per batch).",
    ),
    th.Property(
        "hard_delete",
        th.BooleanType,
        default=False,
        description="Delete rows for records with _sdc_deleted_at instead of keeping them.",
    ),
    th.Property(
        "activate_version",
        th.BooleanType,
        default=True,
        description="Apply ACTIVATE_VERSION messages (full-table replacement).",
    ),
    th.Property(
        "sanitize_null_text_characters",
        th.BooleanType,
        default=False,
        description="Replace NUL characters in text with the replacement character.",
    ),
    th.Property("ssl_enable", th.BooleanType, default=False, description="Use SSL."),
    th.Property(
        "ssl_mode",
        th.StringType,
        default="verify-full",
        description="libpq sslmode when ssl_enable is true.",
    ),
    th.Property("ssl_certificate_authority", th.StringType, description="CA certificate file."),
    th.Property("ssl_client_certificate", th.StringType, description="Client certificate file."),
    th.Property(
        "ssl_client_private_key", th.StringType, secret=True, description="Client key file."
    ),
    th.Property(
        "interpret_content_encoding",
        th.BooleanType,
        default=False,
        description="Store string properties with contentEncoding base64 (or base16) as "
        "bytea, decoded; invalid encodings are refused naming the record and field.",
    ),
    th.Property(
        "lock_timeout",
        th.NumberType,
        default=300,
        description="Seconds to wait for a table lock another session holds (the holder "
        "is logged) before giving up with an error naming it.",
    ),
    th.Property(
        "connect_timeout",
        th.IntegerType,
        default=10,
        description="Seconds to wait for the server to answer a new connection.",
    ),
    th.Property(
        "statement_timeout",
        th.NumberType,
        description="Seconds one statement (a merge) may run; default: the server's.",
    ),
    th.Property(
        "version_columns",
        th.ObjectType(additional_properties=th.CustomType({"type": ["string", "null"]})),
        description="Per-stream version column for the older-never-over-newer guard "
        "(stream name -> column); default is the stream's replication key; null turns "
        "the guard off for the stream (the last record to arrive wins).",
    ),
).to_dict()
"""The target's settings, as `--about` reports them."""

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
