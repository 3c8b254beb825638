"""The target-postgres-atomic console script, under the error policy every tool here shares."""

from __future__ import annotations

from safe_singer_common.plugin import run_plugin

from target_postgres_atomic.target import REFUSALS, TargetPostgresAtomic


def main() -> None:
    """A refusal (a bad setting, input line or record, an unreachable database) ends the run
    with one line, ``target-postgres-atomic: error: ...``, and exit code 1; the traceback only
    with ``TARGET_POSTGRES_ATOMIC_DEBUG=1`` or ``TARGET_POSTGRES_ATOMIC_LOGLEVEL=DEBUG``."""
    run_plugin(TargetPostgresAtomic, REFUSALS)


if __name__ == "__main__":
    main()
