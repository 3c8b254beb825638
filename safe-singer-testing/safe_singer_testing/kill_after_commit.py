"""A target wrapper for crash tests: the wrapper dies right after the target committed a row.

`python kill_after_commit.py TARGET ARGS...` runs the target, relaying its stdout (its STATE
lines) to its own. From the first line containing KILL_AFTER_COMMIT_HOLD_FROM on, lines are held
back, as a wrapper that has not stored them yet (busy, slow database). At each line it runs
KILL_AFTER_COMMIT_SQL on KILL_AFTER_COMMIT_DSN; once that query returns a row (the row is
committed), it SIGKILLs the target and then its own parent (`state-service run`): the target
committed data and STATEs that the wrapper never stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psycopg


def main() -> None:
    dsn, query = os.environ["KILL_AFTER_COMMIT_DSN"], os.environ["KILL_AFTER_COMMIT_SQL"]
    hold_from = os.environ.get("KILL_AFTER_COMMIT_HOLD_FROM", "").encode()
    holding = False
    target = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
    assert target.stdout is not None
    for line in target.stdout:
        holding = holding or bool(hold_from and hold_from in line)
        with psycopg.connect(dsn, autocommit=True) as conn:
            committed = conn.execute(query).fetchone() is not None
        if committed:
            target.kill()
            target.wait()
            os.kill(os.getppid(), signal.SIGKILL)
            return
        if holding:
            continue
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
    sys.exit(target.wait())


if __name__ == "__main__":
    main()
