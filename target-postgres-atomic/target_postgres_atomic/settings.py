"""The target's settings schema, and the peers' settings it refuses (with what to use instead).

Settings a user could expect to take effect but the target does not implement are refused.
Every MeltanoLabs target-postgres setting is accepted (a MeltanoLabs config works unchanged);
pipelinewise-target-postgres names get their meaning here or a pointer to ours; any other
unknown key is refused too, so a typo never silently changes what lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from singer_sdk import typing as th

DEFAULT_BATCH_SIZE_ROWS = 25_000
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

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
        description="Check every record against its whole JSON schema (types, required, enum, "
        "nested objects and arrays, formats, bounds, patterns, lengths).",
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
    th.Property(
        "ssl_enable",
        th.BooleanType,
        default=False,
        description="Use SSL and check the server's certificate (ssl_mode, "
        "ssl_certificate_authority).",
    ),
    th.Property(
        "ssl_mode",
        th.StringType,
        default="verify-full",
        allowed_values=list(SSL_MODES),
        description="libpq sslmode when ssl_enable is true.",
    ),
    th.Property(
        "ssl_certificate_authority",
        th.StringType,
        description="CA certificate that signed the server's: a file path, or the PEM text "
        "itself (written to ssl_storage_directory). Default: libpq's ~/.postgresql/root.crt.",
    ),
    th.Property(
        "ssl_client_certificate_enable",
        th.BooleanType,
        default=False,
        description="Authenticate with a client certificate (ssl_client_certificate, "
        "ssl_client_private_key).",
    ),
    th.Property(
        "ssl_client_certificate",
        th.StringType,
        description="Client certificate: a file path, or the PEM text itself.",
    ),
    th.Property(
        "ssl_client_private_key",
        th.StringType,
        secret=True,
        description="Client certificate's private key: a file path, or the PEM text itself "
        "(written with mode 0600).",
    ),
    th.Property(
        "ssl_storage_directory",
        th.StringType,
        default=".secrets",
        description="Folder where certificates and keys given as PEM text are written for "
        "libpq, which reads files only.",
    ),
    th.Property(
        "ssh_tunnel",
        th.ObjectType(
            th.Property("enable", th.BooleanType, description="Use the tunnel (default false)."),
            th.Property("host", th.StringType, description="SSH bastion host."),
            th.Property("port", th.IntegerType, description="SSH bastion port (default 22)."),
            th.Property("username", th.StringType, description="SSH user on the bastion."),
            th.Property(
                "private_key",
                th.StringType,
                secret=True,
                description="Private key (PEM or OpenSSH text; RSA, ECDSA or Ed25519).",
            ),
            th.Property(
                "private_key_password",
                th.StringType,
                secret=True,
                description="Passphrase of an encrypted private key.",
            ),
            th.Property(
                "keepalive_timeout",
                th.NumberType,
                description="Seconds the bastion may leave an SSH keepalive unanswered (one "
                "goes every third of it) before the run stops as its tunnel is dead (default "
                "60).",
            ),
        ),
        # No defaults inside: singer-sdk's default filling fails on a value that is no object.
        # Secret as a whole too: a key pasted in place of the object must not be quoted.
        secret=True,
        description="Reach PostgreSQL through an SSH bastion: host and port are then as the "
        "bastion sees them.",
    ),
    th.Property(
        "use_copy",
        th.BooleanType,
        default=True,
        description="Always true: every batch is loaded with COPY (false is refused).",
    ),
    th.Property(
        "dialect+driver",
        th.StringType,
        default="postgresql+psycopg",
        description="Accepted for MeltanoLabs configs: any postgresql dialect; the target "
        "always connects with psycopg 3.",
    ),
    th.Property(
        "flush_all_streams",
        th.BooleanType,
        default=True,
        description="Always true (pipelinewise's name): every commit lands every stream's "
        "buffered records (false is refused).",
    ),
    th.Property(
        "temp_dir",
        th.StringType,
        description="Accepted for pipelinewise configs; the target writes no temporary "
        "files (batches stream to PostgreSQL over COPY).",
    ),
    th.Property(
        "interpret_content_encoding",
        th.BooleanType,
        default=False,
        description="Store string properties with contentEncoding base64 (or base16) as "
        "bytea, decoded; invalid encodings are refused naming the record and field.",
    ),
    th.Property(
        "tombstone_retention_days",
        th.NumberType,
        default=90,
        description="With hard_delete: days a deleted key's tombstone is kept to stop older "
        "replays from bringing the row back; older tombstones are pruned (logged).",
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
    "parallelism": "commits are not tunable (one transaction per batch for every stream, "
    "on two sessions); remove it",
    "max_parallelism": "commits are not tunable (one transaction per batch for every stream, "
    "on two sessions); remove it",
    "batch_config": "BATCH files are read from the local file:// URLs of each BATCH message's "
    "manifest; a storage root is not used; remove it",
}


def refused_values(config: Mapping[str, Any]) -> list[str]:
    """Peers' settings accepted only with the value that is what this target does."""
    errors = []
    if config.get("use_copy") is False:
        errors.append(
            "use_copy: false is refused: every batch is loaded with COPY into a staging table "
            "and merged in one transaction (that is what makes it atomic); remove use_copy"
        )
    if config.get("flush_all_streams") is False:
        errors.append(
            "flush_all_streams: false is refused: each commit lands every stream's buffered "
            "records with the STATE that covers them; remove flush_all_streams"
        )
    dialect = config.get("dialect+driver")
    if dialect is not None and not str(dialect).startswith("postgresql"):
        errors.append(
            f"dialect+driver '{dialect}' is refused: the target loads PostgreSQL only "
            "(over psycopg 3); remove dialect+driver"
        )
    schema = config.get("default_target_schema")
    if schema is not None and is_system_schema(str(schema)):
        errors.append(system_schema_refusal(str(schema), "default_target_schema"))
    if config.get("activate_version") is False and config.get("process_activate_version_messages"):
        errors.append(
            "activate_version: false and process_activate_version_messages: true disagree; "
            "set one of them"
        )
    tunnel = config.get("ssh_tunnel")
    if isinstance(tunnel, dict) and tunnel.get("enable"):
        missing = [k for k in ("host", "username", "private_key") if not tunnel.get(k)]
        if missing:
            errors.append(f"ssh_tunnel is enabled but has no {', '.join(missing)}")
        alive = tunnel.get("keepalive_timeout")
        if alive is not None and not (isinstance(alive, int | float) and alive > 0):
            errors.append(f"ssh_tunnel.keepalive_timeout {alive!r} is not a number above 0")
    return errors


def activate_version_enabled(config: Mapping[str, Any]) -> bool:
    """singer-sdk's `process_activate_version_messages` and ours mean the same."""
    return bool(
        config.get("activate_version", True)
        and config.get("process_activate_version_messages", True)
    )


def is_system_schema(schema: str) -> bool:
    """pg_catalog, pg_toast, pg_temp_N...: PostgreSQL reserves the pg_ prefix for itself."""
    return schema == "information_schema" or schema.startswith("pg_")


def system_schema_refusal(schema: str, source: str) -> str:
    return (
        f"schema '{schema}' ({source}) is a PostgreSQL system schema; the target never "
        "creates tables there: pick another default_target_schema (or rename the stream "
        "with a stream map)"
    )
