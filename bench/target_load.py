"""Load one Jira-like Singer input with target-postgres-atomic and its peers, side by side.

Peers: meltanolabs-target-postgres and pipelinewise-target-postgres (each from PyPI into its
own venv under bench/.venvs/, created here when missing) and a raw COPY of the same rows from
CSV via psql (the practical ceiling). Each load goes into its own fresh database. Prints
rows/s, peak RSS and the ratio of each to ours.

    .venv/bin/python bench/target_load.py                 # 100,000 records
    .venv/bin/python bench/target_load.py --rows 1000000  # the full run
    .venv/bin/python bench/target_load.py --key key       # text keys ("PROJ-1") as Jira's
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import figure  # noqa: E402
from safe_singer_testing.postgres import PgServer, create_database, drop_database, find_server  # noqa: E402

OUT = REPO / "bench" / "out"
VENVS = REPO / "bench" / ".venvs"
PEERS = {
    "meltanolabs": "meltanolabs-target-postgres",
    "pipelinewise": "pipelinewise-target-postgres",
}
STREAM = "issues"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "key": {"type": "string"},
        "summary": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "status": {"type": ["string", "null"]},
        "priority": {"type": ["string", "null"]},
        "issue_type": {"type": ["string", "null"]},
        "project_key": {"type": ["string", "null"]},
        "reporter": {"type": ["string", "null"]},
        "assignee": {"type": ["string", "null"]},
        "created": {"type": ["string", "null"], "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "resolved": {"type": ["string", "null"], "format": "date-time"},
        "story_points": {"type": ["number", "null"]},
        "time_spent": {"type": ["integer", "null"]},
        "votes": {"type": ["integer", "null"]},
        "flagged": {"type": ["boolean", "null"]},
        "resolution": {"type": ["string", "null"]},
        "labels": {"type": ["array", "null"], "items": {"type": "string"}},
        "fields": {
            "type": ["object", "null"],
            "properties": {
                "component": {"type": ["string", "null"]},
                "watchers": {"type": ["integer", "null"]},
                "sprint": {"type": ["string", "null"]},
            },
        },
    },
}
JSON_COLUMNS = {"labels", "fields"}
PG_TYPES = {
    "integer": "bigint",
    "number": "numeric",
    "boolean": "boolean",
    "array": "jsonb",
    "object": "jsonb",
}


def issue(i: int, rng: random.Random, base: datetime) -> dict[str, Any]:
    created = base + timedelta(minutes=i)
    return {
        "id": i,
        "key": f"PROJ-{i}",
        "summary": f"Issue {i}: {rng.choice(['crash', 'slow page', 'typo', 'login fails'])}",
        "description": "Steps to reproduce: " + "lorem ipsum dolor sit amet " * rng.randint(2, 6),
        "status": rng.choice(["Open", "In Progress", "Done"]),
        "priority": rng.choice(["Low", "Medium", "High"]),
        "issue_type": rng.choice(["Bug", "Task", "Story"]),
        "project_key": "PROJ",
        "reporter": f"user{rng.randint(1, 500)}@example.com",
        "assignee": None if i % 7 == 0 else f"user{rng.randint(1, 500)}@example.com",
        "created": created.isoformat(),
        "updated": (created + timedelta(hours=rng.randint(0, 900))).isoformat(),
        "resolved": None if i % 3 else (created + timedelta(days=3)).isoformat(),
        "story_points": rng.choice([None, 0.5, 1, 2, 3, 5, 8]),
        "time_spent": rng.randint(0, 100_000),
        "votes": rng.randint(0, 50),
        "flagged": i % 11 == 0,
        "resolution": None if i % 3 else "Fixed",
        "labels": rng.sample(["backend", "ui", "db", "infra", "p1"], rng.randint(0, 3)),
        "fields": {
            "component": rng.choice(["api", "web"]),
            "watchers": rng.randint(0, 9),
            "sprint": f"S{i % 40}",
        },
    }


def generate(rows: int, singer_path: Path, csv_path: Path, key: str) -> None:
    rng = random.Random(42)
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    columns = list(SCHEMA["properties"])
    with singer_path.open("w") as singer, csv_path.open("w", newline="") as raw:
        writer = csv.writer(raw)
        singer.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "schema": SCHEMA,
                    "key_properties": [key],
                    "bookmark_properties": ["updated"],
                }
            )
        )
        singer.write("\n")
        for i in range(rows):
            row = issue(i, rng, base)
            singer.write(json.dumps({"type": "RECORD", "stream": STREAM, "record": row}) + "\n")
            writer.writerow(
                [
                    json.dumps(row[c]) if c in JSON_COLUMNS else ("" if row[c] is None else row[c])
                    for c in columns
                ]
            )
            if (i + 1) % 10_000 == 0:
                singer.write(json.dumps({"type": "STATE", "value": {"done": i + 1}}) + "\n")
        singer.write(json.dumps({"type": "STATE", "value": {"done": rows}}) + "\n")


def raw_table_ddl(key: str) -> str:
    columns = []
    for name, prop in SCHEMA["properties"].items():
        kinds = [
            t
            for t in ([prop["type"]] if isinstance(prop["type"], str) else prop["type"])
            if t != "null"
        ]
        pg = PG_TYPES.get(kinds[0], "text")
        if prop.get("format") == "date-time":
            pg = "timestamptz"
        columns.append(f'"{name}" {pg}' + (" PRIMARY KEY" if name == key else ""))
    return f"CREATE TABLE raw_issues ({', '.join(columns)})"


def ensure_peer(name: str) -> Path:
    python = VENVS / name / "bin" / "python"
    uv = REPO / ".venv" / "bin" / "uv"
    if not python.exists():
        subprocess.run(
            [str(uv), "venv", "-q", str(VENVS / name), "--python", sys.executable], check=True
        )
    exe = VENVS / name / "bin" / "target-postgres"
    if not exe.exists():
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(python), PEERS[name]], check=True
        )
    return exe


def run_measured(
    argv: list[str], stdin_path: Path | None, env: dict[str, str] | None = None
) -> tuple[float, int, bytes]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    err = OUT / "stderr.log"
    with err.open("wb") as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=errors, env=env)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({proc.returncode}):\n" + err.read_text(errors="replace")[-3000:]
        )
    return seconds, usage.ru_maxrss, out


@dataclass
class Result:
    name: str
    seconds: float
    rss_kib: int
    rows: int


def count_rows(db: PgServer, table: str) -> int:
    with db.connect() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def load_ours(db: PgServer, singer: Path) -> tuple[float, int]:
    config = OUT / "ours.json"
    config.write_text(json.dumps(db.target_config()))
    seconds, rss, _ = run_measured(
        [str(REPO / ".venv" / "bin" / "target-postgres-atomic"), "--config", str(config)], singer
    )
    return seconds, rss


def load_meltanolabs(db: PgServer, singer: Path) -> tuple[float, int]:
    exe = ensure_peer("meltanolabs")
    config = OUT / "meltanolabs.json"
    # It insists on a password or a URL; the URL also works with trust auth and Unix sockets.
    config.write_text(
        json.dumps(
            {"sqlalchemy_url": db.url("postgresql+psycopg"), "default_target_schema": "public"}
        )
    )
    seconds, rss, _ = run_measured([str(exe), "--config", str(config)], singer)
    return seconds, rss


def load_pipelinewise(db: PgServer, singer: Path) -> tuple[float, int]:
    exe = ensure_peer("pipelinewise")
    config = OUT / "pipelinewise.json"
    config.write_text(
        json.dumps(
            {
                "host": db.host,
                "port": db.port,
                "user": db.user,
                "password": db.password or "unused-with-trust-auth",
                "dbname": db.dbname,
                "default_target_schema": "public",
            }
        )
    )
    seconds, rss, _ = run_measured([str(exe), "--config", str(config)], singer)
    return seconds, rss


def load_raw_copy(db: PgServer, csv_path: Path, key: str) -> tuple[float, int]:
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql is not on PATH: install the PostgreSQL client for the raw COPY")
    with db.connect(autocommit=True) as conn:
        conn.execute(raw_table_ddl(key))
    env = {**os.environ, "PGPASSWORD": db.password or ""}
    seconds, rss, _ = run_measured(
        [
            psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            db.conninfo(),
            "-c",
            f"\\copy raw_issues FROM '{csv_path}' CSV",
        ],
        None,
        env,
    )
    return seconds, rss


LOADERS: dict[str, tuple[Callable[..., tuple[float, int]], str]] = {
    "target-postgres-atomic (ours)": (load_ours, "public.issues"),
    "meltanolabs-target-postgres": (load_meltanolabs, "public.issues"),
    "pipelinewise-target-postgres": (load_pipelinewise, "public.issues"),
    "raw COPY via psql": (load_raw_copy, "raw_issues"),
}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_all(rows: int, only: list[str], key: str) -> Iterator[Result]:
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"issues_{rows}" if key == "id" else f"issues_{rows}_{key}"
    singer, csv_path = OUT / f"{name}.singer", OUT / f"{name}.csv"
    if not singer.exists() or not csv_path.exists():
        generate(rows, singer, csv_path, key)
    server = find_server()
    for name, (load, table) in LOADERS.items():
        if only and not any(o in name for o in only):
            continue
        db = create_database(server, prefix="bench")
        try:
            source = csv_path if load is load_raw_copy else singer
            seconds, rss = load(db, source, key) if load is load_raw_copy else load(db, source)
            landed = count_rows(db, table)
            if landed != rows:
                raise RuntimeError(f"{name} landed {landed} rows, expected {rows}")
            yield Result(name, seconds, rss, landed)
        finally:
            drop_database(db, server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="records in the input")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only loaders whose name contains this (repeatable)",
    )
    parser.add_argument(
        "--key",
        choices=("id", "key"),
        default="id",
        help="the key property: integer 'id', or Jira's text 'key' (PROJ-1, ...)",
    )
    args = parser.parse_args()
    print(
        f"{args.rows:,} Jira-like records (20 fields, 1 object, 1 array), key '{args.key}'; "
        f"load average before: {loadavg()} on {os.cpu_count()} CPUs"
    )
    results = []
    for result in run_all(args.rows, args.only, args.key):
        results.append(result)
        print(f"  done: {result.name} in {result.seconds:.2f}s (load {loadavg()})", flush=True)
    ours = next((r for r in results if "(ours)" in r.name), None)
    keyed = "" if args.key == "id" else f" keyed by text '{args.key}'"
    print("\n| loader | seconds | rows/s | peak RSS MiB | ours is N x faster |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        ratio = f"{r.seconds / ours.seconds:.2f}" if ours else "-"
        print(
            f"| {r.name} | {r.seconds:.2f} | {r.rows / r.seconds:,.0f} | "
            f"{r.rss_kib / 1024:.0f} | {ratio} |"
        )
        if ours and r is not ours:
            figure(
                "target-postgres-atomic",
                f"load {args.rows:,} records{keyed}, s",
                r.name,
                ours.seconds,
                r.seconds,
                higher_is_better=False,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
