"""Read the JSONL files a singer-sdk BATCH message points to."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from target_postgres_atomic.errors import SEQ_SHIFT, InvalidInputLine


def batch_records(message: dict) -> Iterator[dict]:
    """The records of a BATCH message's files, each as the RECORD message it stands for,
    numbered by the BATCH's input line and its row in the files (`seq`)."""
    line = message["line"]
    encoding = message["encoding"] or {}
    if encoding.get("format") != "jsonl":
        raise InvalidInputLine(
            f"input line {line}: BATCH format '{encoding.get('format')}' is not supported "
            "(jsonl only)"
        )
    row = 0
    for url in message["manifest"]:
        for raw in read_batch_file(url, encoding.get("compression"), line):
            row += 1
            yield {
                "stream": message["stream"],
                "record": raw,
                "version": None,
                "time_extracted": None,
                "line": line,
                "seq": (line << SEQ_SHIFT) | row,
            }


def read_batch_file(url: str, compression: str | None, line: int) -> Iterator[bytes]:
    """Each non-blank line of one manifest file, as raw JSON bytes."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "file"):
        raise InvalidInputLine(
            f"input line {line}: BATCH file '{url}' is not a local file (only file:// URLs)"
        )
    path = Path(unquote(parts.path))
    if not path.exists():
        raise InvalidInputLine(f"input line {line}: BATCH file '{path}' does not exist")
    gzipped = compression == "gzip" or path.suffix == ".gz"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
        for raw in handle:
            raw = raw.strip()
            if raw:
                yield raw
