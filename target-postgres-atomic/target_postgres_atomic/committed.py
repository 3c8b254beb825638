"""`--committed-state`: the state to resume from, read from the target's own table.

A Singer target prints each STATE after committing the rows it covers; a shell pipe that keeps
the last printed line loses the state of a commit whose line was never written (the target
killed in between). `_sdc_target_state` holds it, committed with the rows: printing it gives a
shell pipe the source of truth `state-service run` and its Meltano backend resume from.
"""

from __future__ import annotations

import sys
import typing as t

import click
from singer_sdk.target_base import Target
from typing_extensions import override

from target_postgres_atomic import connector, state_table
from target_postgres_atomic.target_settings import TargetSettings
from target_postgres_atomic.waits import LockWatcher

HELP = (
    "Print the newest STATE committed to this config's _sdc_target_state as one JSON object "
    "({} when there is none) and exit: the state to start the tap from. Reads the rows of "
    "runs under no lease (a shell pipe), or of the pipeline named by STATE_SERVICE_PIPELINE."
)


class CommittedStateTarget(Target):
    """A singer-sdk target whose command line also answers `--committed-state`."""

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """singer-sdk's command line, plus `--committed-state` (listed by `--help`)."""
        command = super().get_singer_command()
        command.params.append(click.Option(["--committed-state"], is_flag=True, help=HELP))
        return command

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        file_input: t.IO[str] | None = None,
        committed_state: bool = False,
    ) -> None:
        """Load from the input, as singer-sdk does; with `--committed-state`, print the state
        to resume from instead (the config is checked as for a run)."""
        if not committed_state or about:
            super().invoke(
                about=about, about_format=about_format, config=config, file_input=file_input
            )
            return
        target = cls(
            config=config.config if config else {},
            validate_config=True,
            parse_env_config=bool(config and config.parse_env),
        )
        settings = TargetSettings.from_config(target.config)
        schema = settings.state_schema
        # A lock on the table (a migration, a LOCK TABLE) is waited for as a load waits.
        locks = LockWatcher(connector.conninfo(target.config), settings.lock_timeout, cls.logger)
        try:
            with (
                connector.connect(target.config) as conn,
                locks.watch(conn, f"{schema}.{state_table.STATE_TABLE}"),
                conn.transaction(),
            ):
                state = state_table.newest(conn, schema, state_table.pipeline_from_environment())
        finally:
            locks.close()
        sys.stdout.write((state or "{}") + "\n")
        sys.stdout.flush()
