"""Read the JSONL files a singer-sdk BATCH message points to."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from target_postgres_atomic.errors import InvalidInputLine


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
