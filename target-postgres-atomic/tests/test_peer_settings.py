"""Configs written for MeltanoLabs target-postgres or pipelinewise work, or are refused saying
why; typos are still refused."""

from __future__ import annotations

from typing import Any

import pytest

from safe_singer_testing import meltanolabs
from safe_singer_testing.cli import about
from safe_singer_testing.target_messages import record, schema

PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}


def test_every_meltanolabs_setting_is_a_setting_here() -> None:
    theirs = meltanolabs.about_settings()["properties"]
    ours = about("target-postgres-atomic")["settings"]["properties"]
    assert set(theirs) - set(ours) == set()
    tunnel = set(theirs["ssh_tunnel"]["properties"])
    assert tunnel - set(ours["ssh_tunnel"]["properties"]) == set()


def _defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting MeltanoLabs gives a default, with that default (use_copy aside: its
    default false is refused here, see below)."""
    config = {
        name: prop["default"]
        for name, prop in settings["properties"].items()
        if "default" in prop and name != "use_copy"
    }
    config["ssh_tunnel"] = {
        name: prop["default"]
        for name, prop in settings["properties"]["ssh_tunnel"]["properties"].items()
        if "default" in prop
    }
    return config


def test_a_config_with_every_meltanolabs_default_loads(run_target, rows) -> None:
    config = _defaults(meltanolabs.about_settings())
    assert config["ssh_tunnel"]["enable"] is False
    for name in ("host", "port", "user", "password", "database"):
        config.pop(name, None)
    run = run_target([schema("t", PROPS), record("t", {"id": 1, "v": "a"})], **config)
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id, v FROM melty.t") == [(1, "a")]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("use_copy", True),
        ("flush_all_streams", True),
        ("temp_dir", "/nonexistent/tmp"),
        ("dialect+driver", "postgresql+psycopg2"),
    ],
)
def test_settings_that_are_what_the_target_does_are_accepted(
    setting: str, value: object, run_target, rows
) -> None:
    run = run_target([schema("t", PROPS), record("t", {"id": 1, "v": "a"})], **{setting: value})
    assert run.returncode == 0, run.stderr
    assert rows("SELECT id FROM t") == [(1,)]


@pytest.mark.parametrize(
    ("setting", "value", "hint"),
    [
        ("use_copy", False, "use_copy: false is refused: every batch is loaded with COPY"),
        ("flush_all_streams", False, "flush_all_streams: false is refused"),
        ("dialect+driver", "mysql+pymysql", "loads PostgreSQL only"),
        ("parallelism", 0, "'parallelism' would be ignored, so it is refused: commits are not"),
        ("max_parallelism", 16, "'max_parallelism' would be ignored, so it is refused: commits"),
        ("batch_config", {"encoding": {"format": "jsonl"}}, "manifest"),
        ("use_copyy", True, "not a setting of target-postgres-atomic"),
        ("ssh_tunnel", {"enable": True, "host": "bastion"}, "has no username, private_key"),
    ],
)
def test_settings_with_another_meaning_are_refused_saying_why(
    setting: str, value: object, hint: str, run_target, rows
) -> None:
    run = run_target([schema("t", PROPS)], **{setting: value})
    assert run.returncode != 0
    assert hint in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert rows("SELECT to_regclass('t')") == [(None,)]


def test_process_activate_version_messages_false_ignores_them(run_target, rows) -> None:
    keyed = schema("t", PROPS, keys=["id"])
    assert run_target([keyed, record("t", {"id": 1, "v": "old"})]).returncode == 0
    refresh = [
        keyed,
        {"type": "ACTIVATE_VERSION", "stream": "t", "version": 5},
        record("t", {"id": 2, "v": "new"}, version=5),
        {"type": "ACTIVATE_VERSION", "stream": "t", "version": 5},
    ]
    run = run_target(refresh, process_activate_version_messages=False)
    assert run.returncode == 0, run.stderr
    assert "Ignoring ACTIVATE_VERSION for 't' (setting)" in run.stderr
    assert rows("SELECT id FROM t WHERE _sdc_deleted_at IS NULL ORDER BY id") == [(1,), (2,)]
