"""The README's stream and permission tables say what the tap does: the streams discovery
lists, the deployments each is read on (a stream class's ``cloud_path`` / ``dc_path``), the
permission a 403 there means (its ``permission``) and its replication (``replication_key``).
A README that drifts from the code misleads the admin granting rights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safe_singer_testing.emulators.jira import JiraEmulator
from safe_singer_testing.emulators.jira.harness import catalog_selecting
from tap_jira_safe.client import JiraStream
from tap_jira_safe.listing import ListingStream
from tap_jira_safe.stream_types import STREAM_TYPES

README = Path(__file__).resolve().parents[1] / "README.md"
CLASSES: dict[str, type[JiraStream]] = {cls.name: cls for cls in STREAM_TYPES}


def table_rows(section: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with ``header``,
    inside the README section ``## {section}``."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = body.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_]+)`", cell)


def plain(cell: str) -> str:
    return cell.replace("*", "")


STREAM_ROWS = {
    name: row for row in table_rows("Streams", "| stream | key |") for name in names(row[0])
}


@pytest.fixture(scope="module")
def discovered() -> set[str]:
    with JiraEmulator(issue_count=1) as jira:
        catalog = catalog_selecting(jira.tap_config(), set())
    return {entry["tap_stream_id"] for entry in catalog["streams"]}


def test_the_stream_table_lists_exactly_the_discovered_streams(discovered: set[str]) -> None:
    assert set(STREAM_ROWS) == discovered
    permission_rows = table_rows("Permissions", "| streams |")
    listed = [name for row in permission_rows for name in names(row[0]) if name in CLASSES]
    assert sorted(listed) == sorted(discovered)  # each stream in exactly one row


@pytest.mark.parametrize("stream", sorted(CLASSES))
def test_the_deployment_cell_matches_the_stream(stream: str) -> None:
    cls = CLASSES[stream]
    cell = STREAM_ROWS[stream][5]
    on_dc = not issubclass(cls, ListingStream) or cls.dc_path is not None
    on_cloud = not issubclass(cls, ListingStream) or cls.cloud_path is not None
    assert on_cloud, stream
    assert cell.startswith("Cloud only") is not on_dc, (stream, cell)


@pytest.mark.parametrize("stream", sorted(CLASSES))
def test_the_permission_cells_match_the_stream(stream: str) -> None:
    """A stream that knows the permission its 403 means names it in both tables; one that
    does not (open to any user, or Browse Projects) never asks for an admin permission."""
    permission = getattr(CLASSES[stream], "permission", None)
    cells = [plain(STREAM_ROWS[stream][6])]
    cells += [
        plain(row[1]) for row in table_rows("Permissions", "| streams |") if stream in names(row[0])
    ]
    for cell in cells:
        if permission is None:
            assert "Administer" not in cell, (stream, cell)
        else:
            assert permission.lower() in cell.lower(), (stream, permission, cell)


@pytest.mark.parametrize("stream", sorted(CLASSES))
def test_the_replication_cell_matches_the_stream(stream: str) -> None:
    key = CLASSES[stream].replication_key
    key = None if isinstance(key, property) else key  # singer-sdk's default: none
    cell = STREAM_ROWS[stream][3]
    if key is None:
        assert "incremental" not in cell, (stream, cell)
    else:
        assert f"incremental on `{key}`" in cell, (stream, key, cell)
