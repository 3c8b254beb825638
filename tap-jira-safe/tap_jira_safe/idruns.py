"""Sets of issue ids as sorted ``[first, last]`` runs: Jira ids are dense, so state stays small."""

from __future__ import annotations

from collections.abc import Iterable


def encode_ids(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as ``[first, last]`` runs."""
    runs: list[list[int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


def decode_ids(runs: list[list[int]]) -> set[int]:
    return {value for first, last in runs for value in range(first, last + 1)}
