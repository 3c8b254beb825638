"""Pipe one Singer program into another as a shell does, and reduce what landed to rows.

Used by the third-party composition tests: our taps into peers' targets, peers' taps into our
target. Each side is a separate process; the state for an incremental run is the last STATE
line the *target* wrote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any


@dataclass
class Piped:
    tap_returncode: int
    target_returncode: int
    target_stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.tap_returncode == 0 and self.target_returncode == 0

    @property
    def last_state(self) -> dict[str, Any] | None:
        """The last state the target wrote (Singer targets write the bare value)."""
        lines = [line for line in self.target_stdout.splitlines() if line.strip()]
        if not lines:
            return None
        value: dict[str, Any] = json.loads(lines[-1])
        return value.get("value", value) if value.get("type") == "STATE" else value


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def pipe(tap: list[str], target: list[str], workdir: Path, timeout: float = 240) -> Piped:
    """``tap | target`` with stderr of both kept in files under ``workdir``."""
    tap_log, target_log = workdir / "tap.log", workdir / "target.log"
    with tap_log.open("w") as tap_err, target_log.open("w") as target_err:
        producer = subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=tap_err, cwd=workdir)
        assert producer.stdout is not None
        try:
            consumer = subprocess.run(
                target,
                stdin=producer.stdout,
                capture_output=False,
                stdout=subprocess.PIPE,
                stderr=target_err,
                text=True,
                timeout=timeout,
                cwd=workdir,
            )
        finally:
            producer.stdout.close()
            producer.wait(timeout=timeout)
    stderr = f"--- tap\n{tap_log.read_text()[-3000:]}\n--- target\n{target_log.read_text()[-3000:]}"
    return Piped(producer.returncode, consumer.returncode, consumer.stdout, stderr)


def newest_rows(
    records: list[dict[str, Any]],
    key: str,
    version: Callable[[dict[str, Any]], Any],
    columns: tuple[str, ...],
) -> dict[str, tuple[Any, ...]]:
    """Records reduced by ``key`` to the newest ``version`` (ties: the later), deletes dropped."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:
        held = newest.get(str(record[key]))
        if held is None or version(record) >= version(held):
            newest[str(record[key])] = record
    return {
        k: tuple(normal(r.get(c)) for c in columns)
        for k, r in newest.items()
        if not r.get("_sdc_deleted_at")
    }


def normal(value: Any) -> Any:
    """One form for a value read from JSON or PostgreSQL: decimals as Decimal, text as is."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
