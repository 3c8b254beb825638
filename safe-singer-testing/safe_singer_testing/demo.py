"""`make demo`: provision PostgreSQL, install the Meltano project, run the main pipelines.

Each step prints what it did; any failure stops the demo with a non-zero exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psycopg
from psycopg import sql

from safe_singer_testing import demo_dynamodb, demo_jira, demo_state, demo_target
from safe_singer_testing.cli import BIN, about
from safe_singer_testing.postgres import REPO_ROOT, PgServer, find_server

PLUGINS = ("tap-jira-safe", "tap-dynamodb-streams", "target-postgres-atomic")
NAME_ENV = "DEMO_DATABASE"
DEMO_DATABASE = os.environ.get(NAME_ENV, "safe_singer_demo")
DEMO_MARK = "created by `make demo` of safe-singer; dropped and re-created by each demo run"
WORKDIR = REPO_ROOT / ".emulators" / "demo"


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


class DemoDatabaseError(RuntimeError):
    """The demo's database name is taken by a database the demo did not create."""


def demo_database(admin: PgServer, name: str = DEMO_DATABASE) -> PgServer:
    """A database of the demo's own, emptied at each run so the output shows this run.

    The demo marks the database it creates with a comment and drops a database of that name
    only when the mark is there; someone else's database is never touched (nor its sessions:
    no FORCE, so a database still in use stops the demo with a message instead).
    """
    with psycopg.connect(admin.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if row is not None:
            if row[0] != DEMO_MARK:
                raise DemoDatabaseError(
                    f"database {name!r} exists and was not created by `make demo`: it is left "
                    f"alone. Drop it yourself, or pick another name with {NAME_ENV}=..."
                )
            try:
                conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.ObjectInUse as exc:
                raise DemoDatabaseError(
                    f"database {name!r} (the demo's own) is in use by another session; "
                    "close it and run the demo again"
                ) from exc
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(DEMO_MARK)
            )
        )
    return admin.with_database(name)


def meltano_env(server: PgServer) -> dict[str, str]:
    """Point Meltano at the demo database; env vars win over meltano.yml."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        TARGET_POSTGRES_ATOMIC_HOST=server.host,
        TARGET_POSTGRES_ATOMIC_PORT=str(server.port),
        TARGET_POSTGRES_ATOMIC_USER=server.user,
        TARGET_POSTGRES_ATOMIC_DATABASE=server.dbname,
        TARGET_POSTGRES_ATOMIC_DEFAULT_TARGET_SCHEMA="landing",
        TAP_POSTGRES_HOST=server.host,
        TAP_POSTGRES_PORT=str(server.port),
        TAP_POSTGRES_USER=server.user,
        # tap-postgres insists on a password even where the server trusts the user.
        TAP_POSTGRES_PASSWORD=server.password or "trust-auth-ignores-this",
        TAP_POSTGRES_DATABASE=server.dbname,
        TAP_POSTGRES_FILTER_SCHEMAS='["crm"]',
    )
    if server.password:
        env["TARGET_POSTGRES_ATOMIC_PASSWORD"] = server.password
    return env


def seed_source(server: PgServer) -> None:
    with server.connect() as conn:
        conn.execute("CREATE SCHEMA crm")
        conn.execute(
            "CREATE TABLE crm.customers (id int PRIMARY KEY, name text, email text,"
            " balance numeric(20, 4), tags text[], updated_at timestamptz)"
        )
        conn.execute(
            "INSERT INTO crm.customers SELECT g, 'customer ' || g, 'c' || g || '@example.com',"
            " g * 1.2345, ARRAY['t' || (g % 3)], now() - g * interval '1 minute'"
            " FROM generate_series(1, 1000) g"
        )


def print_tables(server: PgServer, schema: str) -> None:
    with server.connect() as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " ORDER BY table_name",
            (schema,),
        ).fetchall()
        for (table,) in tables:
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            ).fetchone()
            print(f"  {schema}.{table}: {count[0] if count else 0} rows")


def main() -> int:
    step("PostgreSQL")
    admin = find_server()
    print(f"using {admin.origin}: {admin.url()}")
    try:
        server = demo_database(admin)
    except DemoDatabaseError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    print(f"demo database: {server.dbname}")
    WORKDIR.mkdir(parents=True, exist_ok=True)

    step("meltano install")
    env = meltano_env(server)
    subprocess.run([str(BIN / "meltano"), "install"], cwd=REPO_ROOT, env=env, check=True)

    step("plugins")
    for name in PLUGINS:
        data = about(name)
        print(f"{name}: {data.get('description') or ''}")

    step("meltano run tap-postgres target-postgres-atomic (a third-party tap into our target)")
    seed_source(server)
    subprocess.run(
        [str(BIN / "meltano"), "run", "tap-postgres", "target-postgres-atomic"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    print_tables(server, "landing")
    state = subprocess.run(
        [str(BIN / "meltano"), "state", "list"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    print(f"  Meltano state IDs in state-service's tables: {state.stdout.split()}")
    subprocess.run(
        [
            str(BIN / "state-service"),
            "--db",
            "sqlite:///.state-service/meltano.db",
            "runs",
            "dev:tap-postgres-to-target-postgres-atomic",
        ],
        cwd=REPO_ROOT,
        check=True,
    )

    areas = (
        ("target-postgres-atomic: upserts, a replayed older version, a full refresh", demo_target),
        ("tap-jira-safe -> target-postgres-atomic over the Jira emulator", demo_jira),
        (
            "tap-dynamodb-streams -> target-postgres-atomic over moto + the Streams endpoint",
            demo_dynamodb,
        ),
        ("state-service run: a leased, fenced pipeline with stored bookmarks", demo_state),
    )
    for title, area in areas:
        step(title)
        workdir = WORKDIR / area.__name__.rsplit("_", 1)[-1]
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        area.run(server, workdir)
    print(
        "\ndemo finished: every pipeline above exited 0 (the one FAILED run listed is the lease"
        " holder the demo stopped on purpose)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
