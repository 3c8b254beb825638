"""The target-postgres-atomic console script, under the error policy every tool here shares."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys


def skip_sdk_package_init() -> None:
    """Import singer-sdk's modules without running its package `__init__`, which imports the
    tap side too (REST and GraphQL streams with requests, the tap base, schema sources): a
    sixth of the target's start-up CPU, on every run, for modules a target never uses. Each
    module the target imports (`singer_sdk.target_base`, `singer_sdk.exceptions`...) loads
    as usual. Only in a process that has not imported singer-sdk yet: the console script."""
    if "singer_sdk" in sys.modules:
        return
    spec = importlib.util.find_spec("singer_sdk")
    if spec is not None and spec.submodule_search_locations is not None:
        sys.modules["singer_sdk"] = importlib.util.module_from_spec(spec)


def main() -> None:
    """A refusal (a bad setting, input line or record, an unreachable database) ends the run
    with one line, ``target-postgres-atomic: error: ...``, and exit code 1; the traceback only
    with ``TARGET_POSTGRES_ATOMIC_DEBUG=1`` or ``TARGET_POSTGRES_ATOMIC_LOGLEVEL=DEBUG``."""
    skip_sdk_package_init()
    # (Imported only now, so that the line above comes first.)
    from safe_singer_common.plugin import run_plugin

    from target_postgres_atomic.target import REFUSALS, TargetPostgresAtomic

    try:
        run_plugin(TargetPostgresAtomic, REFUSALS)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    _exit_now()


def _exit_now() -> None:
    """After a clean run, end the process without tearing down every module it imported
    (~0.1 s on each run's tail, after the last commit): the output is flushed, every
    commit is done and every session closed, so nothing is left to finish."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
