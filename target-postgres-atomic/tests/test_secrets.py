"""Secrets in settings never reach stdout, stderr or the database, whatever is wrong."""

from __future__ import annotations

import subprocess

import pytest

from safe_singer_testing.postgres import PgServer
from safe_singer_testing.target_messages import record, schema

SECRET = "Zq7-s3cr3t-never-logged"
PROPS = {"id": {"type": "integer"}}


def _dump(pg_db: PgServer) -> str:
    return subprocess.run(
        ["pg_dump", "--data-only", pg_db.conninfo()], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{SECRET}%ZZ@127.0.0.1:5432/db",
        f"mysql://postgres:{SECRET}@127.0.0.1:5432/db",
        f"postgres:{SECRET}@127.0.0.1:5432/db",
    ],
)
def test_a_bad_sqlalchemy_url_is_refused_without_its_password(url: str, run_target) -> None:
    run = run_target([schema("t", PROPS)], sqlalchemy_url=url)
    assert run.returncode != 0
    assert "sqlalchemy_url" in run.stderr, run.stderr
    assert SECRET not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("setting", ["password", "sqlalchemy_url", "ssl_client_private_key"])
@pytest.mark.parametrize("value", [{"token": SECRET}, [SECRET], 7310558913])
def test_a_secret_of_the_wrong_type_is_not_printed(setting: str, value, run_target) -> None:
    run = run_target([schema("t", PROPS)], **{setting: value})
    assert run.returncode != 0
    assert f"config['{setting}']" in run.stderr, run.stderr
    assert str(value) not in run.stderr and SECRET not in run.stderr + run.stdout


def test_a_secret_is_not_stored(run_target, pg_db: PgServer) -> None:
    run = run_target(
        [schema("t", PROPS), record("t", {"id": 1}), {"type": "STATE", "value": {"a": 1}}],
        password=SECRET,
    )
    assert run.returncode == 0, run.stderr
    assert SECRET not in run.stderr + run.stdout + _dump(pg_db)
