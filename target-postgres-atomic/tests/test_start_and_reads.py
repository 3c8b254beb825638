"""The console script's lean start keeps singer-sdk's package names importable, and the
reader hands over every input line whole, however the reads cut them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from target_postgres_atomic import reader
from target_postgres_atomic.reader import LineReader

LEAN_START_THEN_PACKAGE_NAME = """
import sys
from target_postgres_atomic.cli import skip_sdk_package_init
skip_sdk_package_init()
import target_postgres_atomic.target
assert "singer_sdk.tap_base" not in sys.modules, "the package __init__ ran at start-up"
from singer_sdk import Target, metrics
from singer_sdk.target_base import Target as TargetBase
assert Target is TargetBase and metrics.__name__ == "singer_sdk.metrics"
try:
    from singer_sdk import NoSuchName
except ImportError:
    print("ok")
"""


def test_a_name_of_singer_sdks_package_still_imports_after_the_lean_start() -> None:
    # Plugins written for singer-sdk import its names from the package (`from singer_sdk
    # import Target`); the lean start must not turn that into an ImportError.
    result = subprocess.run(
        [sys.executable, "-c", LEAN_START_THEN_PACKAGE_NAME], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("read_bytes", [1, 5, 7, 64, 1 << 20])
@pytest.mark.parametrize("ends_with_newline", [True, False])
def test_every_line_arrives_whole_however_the_reads_cut_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_bytes: int, ends_with_newline: bool
) -> None:
    lines = [b'{"a": 1}', b"", b"x" * 40, b'{"type": "STATE"}', b"yz"]
    data = b"\n".join(lines) + (b"\n" if ends_with_newline else b"")
    path = tmp_path / "input"
    path.write_bytes(data)
    monkeypatch.setattr(reader, "READ_BYTES", read_bytes)
    line_reader = LineReader.__new__(LineReader)
    line_reader.on_idle = lambda: None
    with path.open("rb") as stream:
        got = [line for read in line_reader.reads(stream) for line in read]
    assert [line.rstrip(b"\n") for line in got] == lines
    assert b"".join(got) == data
