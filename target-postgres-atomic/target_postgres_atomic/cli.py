"""The target-postgres-atomic console script, under the error policy every tool here shares."""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys

YOUNG_OBJECTS_PER_COLLECTION = 100_000
"""The garbage collector's first threshold (Python's default 700): each buffered row is a
tracked tuple, so the default collected every 700 rows, ~2% of a load's instructions; the
rows hold no cycles, and 100,000 young objects are a few MiB at most."""


def skip_sdk_package_init() -> None:
    """Import singer-sdk's modules without running its package `__init__`, which imports the
    tap side too (REST and GraphQL streams with requests, the tap base, schema sources): a
    sixth of the target's start-up CPU, on every run, for modules a target never uses. Each
    module the target imports (`singer_sdk.target_base`, `singer_sdk.exceptions`...) loads
    as usual; a name of the package itself (`from singer_sdk import Target`, as plugins
    written for singer-sdk do) runs the `__init__` then, once. Only in a process that has
    not imported singer-sdk yet: the console script."""
    if "singer_sdk" in sys.modules:
        return
    spec = importlib.util.find_spec("singer_sdk")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def run_init(name: str) -> object:
        if importlib.util.find_spec(f"singer_sdk.{name}") is not None:
            # A module of the package (`from singer_sdk import metrics`): not set yet, so
            # the import system imports it once this says it is missing.
            raise AttributeError(name)
        del vars(package)["__getattr__"]  # (the __init__ may define its own)
        loader.exec_module(package)
        return getattr(package, name)

    vars(package)["__getattr__"] = run_init
    sys.modules["singer_sdk"] = package


def main() -> None:
    """A refusal (a bad setting, input line or record, an unreachable database) ends the run
    with one line, ``target-postgres-atomic: error: ...``, and exit code 1; the traceback only
    with ``TARGET_POSTGRES_ATOMIC_DEBUG=1`` or ``TARGET_POSTGRES_ATOMIC_LOGLEVEL=DEBUG``."""
    skip_sdk_package_init()
    # (Imported only now, so that the line above comes first.)
    from safe_singer_common.plugin import run_plugin

    from target_postgres_atomic.target import REFUSALS, TargetPostgresAtomic

    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION)
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
