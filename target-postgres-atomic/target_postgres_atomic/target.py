"""The target-postgres-atomic Target class: settings and sink wiring."""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sql import SQLTarget

from target_postgres_atomic.sinks import PostgresSink


class TargetPostgresAtomic(SQLTarget):
    """Singer target that stages each batch with COPY and merges it in one transaction."""

    name = "target-postgres-atomic"
    default_sink_class = PostgresSink

    config_jsonschema = th.PropertiesList(
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
        th.Property(
            "ssl_client_certificate", th.StringType, description="Client certificate file."
        ),
        th.Property(
            "ssl_client_private_key", th.StringType, secret=True, description="Client key file."
        ),
        th.Property(
            "version_columns",
            th.ObjectType(additional_properties=th.StringType),
            description="Per-stream version column for the older-never-over-newer guard "
            "(stream name -> column); default is the stream's replication key.",
        ),
    ).to_dict()


if __name__ == "__main__":
    TargetPostgresAtomic.cli()
