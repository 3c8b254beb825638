"""The delete-proof scenario of `bench/tap_jira.py` (`--delete-proofs N`).

One emulator per tap executable (the same seeded site each time): a first run reads every
issue with `reconcile_deletes`, then N issues spread over the site are deleted at the source
and a second run from the first's state proves them. Counted in the second run: its
`issue/bulkfetch` calls, its `GET issue/{id}` calls (each deleted id not returned by
bulkfetch needs its 404), all its requests, and the deletes it emitted against the truth.
No 429s here: a retry would count as a proof request.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safe_singer_testing.emulators.jira import JiraEmulator

# the emulator counts paths with every number folded to {id}
BULKFETCH = "/rest/api/{id}/issue/bulkfetch"
GET_ISSUE = "/rest/api/{id}/issue/{id}"


@dataclass
class ProofResult:
    name: str
    deletes: int
    bulkfetch_calls: int
    issue_gets: int
    requests: int  # every request of the second run
    wall_s: float  # the second run
    deleted_emitted: int  # of the deletes made at the source
    wrongly_deleted: int  # live issues emitted as deleted
    returncode: int
    load_1min: float

    @property
    def proof_requests(self) -> int:
        return self.bulkfetch_calls + self.issue_gets


def prove_deletes(
    name: str, tap: Path, issues: int, deletes: int, latency_ms: int, tmp: Path
) -> ProofResult:
    """Run the scenario for one tap executable."""
    work = tmp / f"proofs-{len(list(tmp.glob('proofs-*')))}"
    work.mkdir()
    with JiraEmulator(issue_count=issues, latency_ms=latency_ms) as jira:
        config = jira.tap_config(
            search_lag_seconds=0,
            lookback_minutes=1,
            reconcile_deletes=True,
            # the run must not refuse the N deletes as a suspicious listing
            max_delete_fraction=min(1.0, max(0.05, 2 * deletes / issues)),
        )
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config))
        catalog_path = work / "catalog.json"
        catalog_path.write_text(json.dumps(_issues_catalog(tap, config_path)))
        base = [str(tap), "--config", str(config_path), "--catalog", str(catalog_path)]
        first, code, log = _sync(base, work / "first")
        if code:
            raise SystemExit(f"{name}: the first delete-proof run exited {code}:\n{log[-2500:]}")
        state_path = work / "state.json"
        state_path.write_text(json.dumps(_last_state(first)))
        live = sorted(int(i) for i in jira.live_issues())
        step = max(len(live) // max(deletes, 1), 1)
        gone = {str(i) for i in live[::step][:deletes]}
        for issue_id in gone:
            jira.dataset.delete_issue(int(issue_id))
        by_path, requests = dict(jira.stats.by_path), jira.stats.requests
        start = time.monotonic()
        second, code, log = _sync([*base, "--state", str(state_path)], work / "second")
        wall = time.monotonic() - start
        if code:
            print(f"{name}: the delete-proof run exited {code}:\n{log[-2500:]}")
        emitted = {
            str(m["record"]["id"])
            for m in second
            if m.get("type") == "RECORD"
            and m.get("stream") == "issues"
            and m["record"].get("_sdc_deleted_at")
        }
        return ProofResult(
            name=name,
            deletes=len(gone),
            bulkfetch_calls=jira.stats.by_path[BULKFETCH] - by_path.get(BULKFETCH, 0),
            issue_gets=jira.stats.by_path[GET_ISSUE] - by_path.get(GET_ISSUE, 0),
            requests=jira.stats.requests - requests,
            wall_s=wall,
            deleted_emitted=len(emitted & gone),
            wrongly_deleted=len(emitted - gone),
            returncode=code,
            load_1min=os.getloadavg()[0],
        )


def _issues_catalog(tap: Path, config: Path) -> dict[str, Any]:
    """The executable's own catalog (its schema, not ours) with only `issues` selected."""
    found = subprocess.run(
        [str(tap), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode:
        raise SystemExit(f"{tap} --discover failed:\n{found.stderr[-3000:]}")
    catalog: dict[str, Any] = json.loads(found.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] == "issues"
    return catalog


def _sync(args: list[str], prefix: Path) -> tuple[list[dict[str, Any]], int, str]:
    out, err = prefix.with_suffix(".out"), prefix.with_suffix(".err")
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(args, stdout=stdout, stderr=stderr, check=False)
    messages = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return messages, done.returncode, err.read_text()


def _last_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    states = [m["value"] for m in messages if m.get("type") == "STATE"]
    if not states:
        raise SystemExit("the first delete-proof run emitted no STATE")
    return states[-1]


def report_proofs(results: list[ProofResult], issues: int, latency_ms: int) -> None:
    print(
        f"\nDelete proofs: {issues} issues read once with reconcile_deletes, then "
        f"{results[0].deletes} deleted at the source and read again from that state "
        f"(Cloud emulator, {latency_ms} ms latency, no 429s); second run only.\n"
    )
    print(
        "| tap | deletes | bulkfetch calls | GET issue calls | proof requests "
        "| requests in the run | deletes emitted | live emitted as deleted | wall s | exit "
        "| load 1 min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.deletes} | {r.bulkfetch_calls} | {r.issue_gets} | "
            f"{r.proof_requests} | {r.requests} | {r.deleted_emitted}/{r.deletes} | "
            f"{r.wrongly_deleted} | {r.wall_s:.1f} | {r.returncode} | {r.load_1min:.2f} |"
        )
