"""Crash soak of the whole system: both pipelines under `state-service run` and `meltano run`,
SIGKILLs of the tap, the target or the wrapper at random moments while the sources change.
The mix: Jira issues (upsert), DynamoDB (`hard_delete` into a case-insensitive key, keys spelled
in both cases) and, in the long run only, Jira boards (`load_method: overwrite`).

At the end, after a clean run of each pipeline: every table equals its source row by row, no
run is left RUNNING without a live holder, and no stored bookmark ever moved backwards. The
short run is part of `make test`; `make soak` runs the long one. `SOAK_SEED` replays a run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from state_service.store import Store

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.soak import (
    Figures,
    Pipeline,
    backwards_moves,
    bookmark_history,
    compare_rows,
    dead_running_runs,
    run_until_clean,
    soak_rounds,
)
from safe_singer_testing.soak_sources import (
    case_insensitive_tables,
    loaded,
    meltano_pipelines,
    resurrected,
    running_sources,
    state_service_pipeline,
)


def crash_soak(
    db: PgServer,
    workdir: Path,
    seed: int,
    kills: int,
    jira_issues: int,
    delete_new_issues: bool,
    mix: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> Figures:
    with capsys.disabled():
        print(
            f"\ncrash soak: seed {seed} (replay with SOAK_SEED={seed}), {kills} kills", flush=True
        )
    rng = random.Random(seed)
    figures = Figures(seed)
    state_url = db.url("postgresql+psycopg")
    store = Store(state_url)
    problems: list[str] = []
    try:
        with running_sources(seed, jira_issues, delete_new_issues) as sources:
            pipelines: list[Pipeline] = [
                state_service_pipeline(sources, source, db, state_url, workdir) for source in mix
            ] + meltano_pipelines(sources, mix, db, state_url, workdir)
            case_insensitive_tables(db, [p.schema for p in pipelines if p.source == "dynamodb"])
            for pipeline in pipelines:  # the initial load, which also times each pipeline
                run_until_clean(pipeline, workdir / f"first-{pipeline.schema}.log", figures)

            # An overwrite table after every run, killed or not: a row still live at the
            # source that the table held before the run must still be there (a killed tap's
            # partial table never replaces the whole one; the last clean run would hide it).
            overwritten = {
                p.schema: loaded(db, p.source, p.schema) for p in pipelines if p.source == "boards"
            }

            def after_run(pipeline: Pipeline) -> None:
                problems.extend(backwards_moves(bookmark_history(store, pipeline.state_id)))
                if pipeline.source == "dynamodb":
                    problems.extend(resurrected(db, pipeline.schema))
                if pipeline.schema in overwritten:
                    held = loaded(db, pipeline.source, pipeline.schema)
                    live = sources.truth(pipeline.source)
                    lost = sorted(set(overwritten[pipeline.schema]) & set(live) - set(held))
                    problems.extend(
                        f"{pipeline.name}: run {figures.runs} dropped {k}" for k in lost
                    )
                    overwritten[pipeline.schema] = held

            soak_rounds(pipelines, kills, rng, figures, workdir, sources.change, after_run)
            sources.quiesce()
            time.sleep(1)  # the writer thread's last batch lands in the stream
            for pipeline in pipelines:
                run_until_clean(pipeline, workdir / f"last-{pipeline.schema}.log", figures)
            for pipeline in pipelines:
                history = bookmark_history(store, pipeline.state_id)
                figures.bookmarks_checked += len(history)
                problems.extend(backwards_moves(history))
                problems.extend(
                    compare_rows(
                        pipeline.name,
                        sources.truth(pipeline.source),
                        loaded(db, pipeline.source, pipeline.schema),
                        figures,
                    )
                )
        problems.extend(dead_running_runs(store))
    finally:
        store.dispose()
        with capsys.disabled():
            print(figures.report(), flush=True)
    assert not problems, "\n".join(problems[:40])
    assert figures.mismatches == 0
    assert sum(figures.kills.values()) >= kills
    return figures


SHORT_MIX = ("jira", "dynamodb")  # boards (overwrite) costs two more pipelines: long run only


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~130 s on a quiet machine; 250-300 s at load 15 on 2 cores
def test_short_crash_soak(
    pg_db: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("SOAK_SEED", "20261129"))
    figures = crash_soak(
        pg_db,
        tmp_path,
        seed,
        kills=6,
        jira_issues=120,
        delete_new_issues=True,
        mix=SHORT_MIX,
        capsys=capsys,
    )
    wrappers = {key.split("/")[0] for key in figures.kills}
    assert wrappers == {"state-service", "meltano"}


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_long_crash_soak(
    pg_db: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("SOAK_SEED", str(time.time_ns() % 1_000_000)))
    figures = crash_soak(
        pg_db,
        tmp_path,
        seed,
        kills=36,
        jira_issues=300,
        delete_new_issues=True,
        mix=("jira", "dynamodb", "boards"),
        capsys=capsys,
    )
    assert len(figures.kills) == 6  # every victim under every wrapper
