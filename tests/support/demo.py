"""`make demo`: provision PostgreSQL, install the Meltano project, run the main pipelines.

Each step prints what it did; any failure stops the demo with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.cli import BIN, about
from tests.support.postgres import REPO_ROOT, PgServer, find_server

PLUGINS = ("tap-jira-safe", "tap-dynamodb-streams", "target-postgres-atomic")


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def meltano_env(server: PgServer) -> dict[str, str]:
    """Point Meltano at the provisioned server; env vars win over meltano.yml."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        TARGET_POSTGRES_ATOMIC_HOST=server.host,
        TARGET_POSTGRES_ATOMIC_PORT=str(server.port),
        TARGET_POSTGRES_ATOMIC_USER=server.user,
        TARGET_POSTGRES_ATOMIC_DATABASE=server.dbname,
    )
    if server.password:
        env["TARGET_POSTGRES_ATOMIC_PASSWORD"] = server.password
    return env


def main() -> int:
    step("PostgreSQL")
    server = find_server()
    print(f"using {server.origin}: {server.url()}")

    step("meltano install")
    env = meltano_env(server)
    subprocess.run([str(BIN / "meltano"), "install"], cwd=REPO_ROOT, env=env, check=True)

    step("plugins")
    for name in PLUGINS:
        data = about(name)
        settings = ", ".join(sorted(data["settings"]["properties"]))
        print(f"{name}: {data.get('description') or ''}\n  settings: {settings}")
    print(json.dumps({"demo": "ok", "postgres": server.origin}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
