"""Benchmark: tap-jira-safe vs singer-io tap-jira (PyPI) on the same Jira emulator settings.

Both read issues with their comments, changelogs and worklogs from one emulator run in TLS
mode (the peer speaks https only) with added latency per request and a 429 (`Retry-After`)
every N requests. Prints wall time, requests made (in all, and by the child streams per
issue), issues emitted and missed against ground truth, child records emitted against the
truth, and the time each spent waiting on 429s against the `Retry-After` served to it.

    .venv/bin/python bench/tap_jira.py                   # 20,000 issues (the issue's settings)
    .venv/bin/python bench/tap_jira.py --issues 2000     # quicker
    .venv/bin/python bench/tap_jira.py --issues 5000 --skip-peer --delete-proofs 1000 \
        --before-tap /tmp/jira-before/.venv/bin/tap-jira-safe   # delete proofs, before/after
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tap_jira_safe.timeutil import parse_jira_time  # noqa: E402

from bench.figures import figure  # noqa: E402
from bench.tap_jira_proofs import ProofResult, prove_deletes, report_proofs  # noqa: E402
from safe_singer_testing.cli import BIN  # noqa: E402
from safe_singer_testing.emulators.jira import JiraEmulator  # noqa: E402
from safe_singer_testing.emulators.jira.harness import catalog_selecting  # noqa: E402
from safe_singer_testing.emulators.jira.render import embedded  # noqa: E402

PEER = "tap-jira==2.6.0"
PEER_VENV = ROOT / "bench" / ".venvs" / "tap-jira"
# child streams: ours -> kind, the peer's -> kind
CHILDREN = {
    "issue_comments": "comments",
    "issue_changelogs": "changelogs",
    "changelogs": "changelogs",
    "issue_worklogs": "worklogs",
    "worklogs": "worklogs",
}
CHILD_PATH = re.compile(r"/comment|changelog|/worklog")
# the other streams both taps offer: ours -> the peer's name
SHARED_STREAMS = {
    "projects": "projects",
    "versions": "versions",
    "components": "components",
    "project_categories": "project_categories",
    "resolutions": "resolutions",
    "project_roles": "roles",
    "users": "users",
}
# our per-issue child streams -> the emulator paths (ids as {id}) their requests go to
PER_ISSUE_PATHS = {
    "issue_comments": re.compile(r"/comment$"),
    "issue_changelogs": re.compile(r"changelog"),
    "issue_worklogs": re.compile(r"/worklog"),
    "issue_watchers": re.compile(r"/watchers$"),
    "issue_votes": re.compile(r"/votes$"),
    "issue_remote_links": re.compile(r"/remotelink$"),
}


@dataclass
class Result:
    name: str
    wall_s: float
    requests: int
    emitted: int
    missed: int
    stale: int
    rate_limited: int
    retry_after_served_s: float
    waited_429_s: float | None
    returncode: int
    child_requests: int
    children: dict[str, int]  # kind -> distinct records emitted
    child_truth: dict[str, int]  # kind -> records at the source when the run ended
    load_1min: float  # at the end of the run: the machine is shared
    per_stream: dict[str, int]  # per-issue child stream -> requests it made


def ensure_peer() -> Path:
    tap = PEER_VENV / "bin" / "tap-jira"
    if not tap.exists():
        subprocess.run([str(BIN / "uv"), "venv", "-q", str(PEER_VENV)], check=True)
        subprocess.run(
            [
                str(BIN / "uv"),
                "pip",
                "install",
                "-q",
                "--python",
                str(PEER_VENV / "bin" / "python"),
                PEER,
            ],
            check=True,
        )
    return tap


def run(
    name: str,
    args: list[str],
    jira: JiraEmulator,
    env: dict[str, str],
    tmp: Path,
    waited: re.Pattern[str] | None,
) -> Result:
    """One run; with churn on, a second incremental run (churn off) from the first's state."""
    before = (jira.stats.requests, jira.stats.rate_limited, jira.stats.retry_after_total_s)
    child_before = _child_requests(jira)
    paths_before = dict(jira.stats.by_path)
    start = time.monotonic()
    versions, log, code, state, children = run_once(name, args, env, tmp)
    churn = jira.settings.churn_every_searches
    if churn and code == 0:
        jira.settings.churn_every_searches = 0
        state_path = tmp / f"{name}.state.json"
        state_path.write_text(json.dumps(state))
        again, log2, code, _, more = run_once(name, [*args, "--state", str(state_path)], env, tmp)
        for kind, ids in more.items():
            children.setdefault(kind, set()).update(ids)
        for issue_id, ms in again.items():
            versions[issue_id] = max(ms, versions.get(issue_id, ms))
        log += log2
        jira.settings.churn_every_searches = churn
    wall = time.monotonic() - start
    truth = jira.live_issues()
    return Result(
        name=name,
        wall_s=wall,
        requests=jira.stats.requests - before[0],
        emitted=len(versions),
        missed=len(set(truth) - set(versions)),
        stale=sum(1 for i, ms in truth.items() if i in versions and versions[i] < ms),
        rate_limited=jira.stats.rate_limited - before[1],
        retry_after_served_s=jira.stats.retry_after_total_s - before[2],
        waited_429_s=sum(float(w) for w in waited.findall(log)) if waited else None,
        returncode=code,
        child_requests=_child_requests(jira) - child_before,
        children={kind: len(ids) for kind, ids in children.items()},
        child_truth=child_truth(jira),
        load_1min=os.getloadavg()[0],
        per_stream={
            stream: sum(
                n - paths_before.get(path, 0)
                for path, n in jira.stats.by_path.items()
                if pattern.search(path)
            )
            for stream, pattern in PER_ISSUE_PATHS.items()
        },
    )


def _child_requests(jira: JiraEmulator) -> int:
    return sum(n for path, n in jira.stats.by_path.items() if CHILD_PATH.search(path))


def child_truth(jira: JiraEmulator) -> dict[str, int]:
    issues = list(jira.dataset.issues.values())
    return {
        "comments": sum(len(i.comments) for i in issues),
        "changelogs": sum(len(i.histories) for i in issues),
        "worklogs": len(jira.dataset.worklogs),
    }


def run_once(
    name: str, args: list[str], env: dict[str, str], tmp: Path
) -> tuple[dict[str, int], str, int, dict[str, Any], dict[str, set[str]]]:
    """Newest `updated` (ms) per issue id emitted, the log, the exit code, the last state,
    the child records' ids by kind."""
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(args, stdout=stdout, stderr=stderr, env=env, check=False)
    versions: dict[str, int] = {}
    state: dict[str, Any] = {}
    children: dict[str, set[str]] = {}
    for line in out.read_text().splitlines():
        message = json.loads(line)
        if message.get("type") == "STATE":
            state = message["value"]
        if message.get("type") == "RECORD" and message.get("stream") in CHILDREN:
            kind = CHILDREN[message["stream"]]
            children.setdefault(kind, set()).add(str(message["record"]["id"]))
        if message.get("type") == "RECORD" and message.get("stream") == "issues":
            record = message["record"]
            updated = record.get("updated") or record["fields"]["updated"]
            ms = round(parse_jira_time(updated).timestamp() * 1000)
            versions[str(record["id"])] = max(ms, versions.get(str(record["id"]), ms))
    log = err.read_text()
    if done.returncode or os.environ.get("BENCH_VERBOSE"):
        print(f"{name} exited {done.returncode}:\n{log[-2500:]}", file=sys.stderr)
    return versions, log, done.returncode, state, children


# singer-io tap-jira sends prepared requests with `Session.send`, which ignores
# REQUESTS_CA_BUNDLE: this start-up hook adds the emulator's certificate to requests' default
# trust store inside the peer's process only (nothing on disk changes).
PEER_TRUST_HOOK = """
import os
_bundle = os.environ.get("BENCH_EXTRA_CA")
if _bundle:
    import requests.adapters as _adapters
    _context = getattr(_adapters, "_preloaded_ssl_context", None)
    if _context is not None:
        _context.load_verify_locations(_bundle)
"""


def peer_env(env: dict[str, str], tmp: Path) -> dict[str, str]:
    hook = tmp / "peer-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(PEER_TRUST_HOOK)
    return {**env, "PYTHONPATH": str(hook), "BENCH_EXTRA_CA": env["REQUESTS_CA_BUNDLE"]}


def peer_catalog(
    tap: Path, config: Path, env: dict[str, str], selected: set[str]
) -> dict[str, Any]:
    found = subprocess.run(
        [str(tap), "--config", str(config), "--discover"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode:
        raise SystemExit(f"peer discovery failed:\n{found.stderr[-3000:]}")
    catalog: dict[str, Any] = json.loads(found.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in selected
    return catalog


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--rate-limit-every", type=int, default=100)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument(
        "--churn-every",
        type=int,
        default=0,
        help="other users edit 2 issues every N search pages (default: off)",
    )
    parser.add_argument(
        "--embedded-limit",
        type=int,
        default=None,
        help="comments and changelog entries an issue embeds (default: as Jira Cloud, "
        "40 changelog entries in search, comments undocumented so 5)",
    )
    parser.add_argument(
        "--deployment",
        choices=["Cloud", "Server"],
        default="Cloud",
        help="Server: a Data Center emulator (REST v2, startAt paging); ours only (the peer "
        "reads Cloud's search/jql)",
    )
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument(
        "--shared-streams",
        action="store_true",
        help="both taps also read every other stream both offer: projects, versions, "
        "components, project categories, resolutions, project roles, users",
    )
    parser.add_argument(
        "--per-issue-streams",
        action="store_true",
        help="ours also reads issue_watchers, issue_votes and issue_remote_links (one "
        "request per issue each: Jira reads none in bulk)",
    )
    parser.add_argument(
        "--delete-proofs",
        type=int,
        default=0,
        metavar="N",
        help="also run the delete-proof scenario: read every issue, delete N at the source, "
        "read again and count the requests that prove the deletes (default: off)",
    )
    parser.add_argument(
        "--before-tap",
        type=Path,
        default=None,
        metavar="EXECUTABLE",
        help="with --delete-proofs: also run the scenario with this tap-jira-safe "
        "executable (an older build) and compare",
    )
    opts = parser.parse_args()

    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-jira-") as name,
        JiraEmulator(
            issue_count=opts.issues,
            tls=True,
            latency_ms=opts.latency_ms,
            rate_limit_every=opts.rate_limit_every,
            retry_after_s=opts.retry_after,
            churn_every_searches=opts.churn_every,
            churn_edits=2,
            embedded_limit=opts.embedded_limit,
            deployment=opts.deployment,
        ) as jira,
    ):
        tmp = Path(name)
        assert jira.ca_path is not None
        env = {**os.environ, "REQUESTS_CA_BUNDLE": jira.ca_path}
        ours_config = tmp / "ours.json"
        # the emulator runs with no search-index lag here, so ours is told so (default: 30 s)
        ours_config.write_text(json.dumps(jira.tap_config(page_size=100, search_lag_seconds=0)))
        catalog = tmp / "ours-catalog.json"
        selected = {"issues", "issue_comments", "issue_changelogs", "issue_worklogs"}
        if opts.per_issue_streams:
            selected |= {"issue_watchers", "issue_votes", "issue_remote_links"}
        if opts.shared_streams:
            selected |= set(SHARED_STREAMS)
        with JiraEmulator(issue_count=1) as plain:  # discovery without the TLS trust setup
            catalog.write_text(json.dumps(catalog_selecting(plain.tap_config(), selected)))
        results.append(
            run(
                "tap-jira-safe",
                [
                    str(BIN / "tap-jira-safe"),
                    "--config",
                    str(ours_config),
                    "--catalog",
                    str(catalog),
                ],
                jira,
                env,
                tmp,
                re.compile(r"\(429\), waiting ([0-9.]+) s"),
            )
        )
        if not opts.skip_peer and opts.deployment == "Cloud":
            peer = ensure_peer()
            env = peer_env(env, tmp)
            cfg = jira.tap_config()
            peer_config = tmp / "peer.json"
            peer_config.write_text(
                json.dumps(
                    {
                        "base_url": jira.url,
                        "username": cfg["email"],
                        "password": cfg["api_token"],
                        "start_date": cfg["start_date"],
                        "request_timeout": 60,
                        "user_agent": "bench",
                    }
                )
            )
            peer_cat = tmp / "peer-catalog.json"
            peer_selected = {"issues", "issue_comments", "changelogs", "worklogs"}
            if opts.shared_streams:
                peer_selected |= set(SHARED_STREAMS.values())
            peer_cat.write_text(json.dumps(peer_catalog(peer, peer_config, env, peer_selected)))
            results.append(
                run(
                    "tap-jira (singer-io 2.6.0)",
                    [str(peer), "--config", str(peer_config), "--properties", str(peer_cat)],
                    jira,
                    env,
                    tmp,
                    re.compile(r"Backing off request\(\.\.\.\) for ([0-9.]+)s \([^)]*RateLimit"),
                )
            )
    report(opts, results)
    proofs = delete_proofs(opts)
    failed = [r.returncode for r in results] + [p.returncode for p in proofs]
    return 1 if any(failed) else 0


def delete_proofs(opts: argparse.Namespace) -> list[ProofResult]:
    """The delete-proof scenario for ours and, if given, the older executable."""
    if not opts.delete_proofs:
        return []
    taps = [("tap-jira-safe", BIN / "tap-jira-safe")]
    if opts.before_tap:
        taps.append((f"tap-jira-safe before ({opts.before_tap})", opts.before_tap))
    with tempfile.TemporaryDirectory(prefix="bench-jira-proofs-") as name:
        proofs = [
            prove_deletes(label, tap, opts.issues, opts.delete_proofs, opts.latency_ms, Path(name))
            for label, tap in taps
        ]
    report_proofs(proofs, opts.issues, opts.latency_ms)
    if len(proofs) == 2:
        after, before = proofs
        figure(
            "tap-jira-safe",
            f"proving {after.deletes:,} deletes, requests",
            "tap-jira-safe before bulkfetch's 1,000-id rule",
            after.proof_requests,
            before.proof_requests,
            higher_is_better=False,
        )
    return proofs


def report(opts: argparse.Namespace, results: list[Result]) -> None:
    load = os.getloadavg()
    comments, histories = (n or "all" for n in embedded(opts.deployment, opts.embedded_limit))
    embeds = f"{comments} comments and {histories} changelog entries"
    churn = f", 2 edits every {opts.churn_every} search pages" if opts.churn_every else ""
    print(
        f"\nJira {opts.deployment} emulator: {opts.issues} issues, {opts.latency_ms} ms "
        f"latency, 429 "
        f"(Retry-After: {opts.retry_after}) every {opts.rate_limit_every} requests{churn}, TLS, "
        f"search embeds {embeds} per issue. "
        f"Load average at the end: {load[0]:.2f} {load[1]:.2f} (2 cores, shared).\n"
    )
    print(
        "| tap | wall s | requests | per issue | child req. per issue | issues emitted | missed "
        "| stale | comments | changelogs | worklogs | 429s | Retry-After served s "
        "| waited on 429 s | exit | load 1 min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        waited = "n/a" if r.waited_429_s is None else f"{r.waited_429_s:.1f}"
        kids = " | ".join(
            f"{r.children.get(k, 0)}/{r.child_truth[k]}"
            for k in ("comments", "changelogs", "worklogs")
        )
        print(
            f"| {r.name} | {r.wall_s:.1f} | {r.requests} | {r.requests / opts.issues:.3f} | "
            f"{r.child_requests / opts.issues:.3f} | {r.emitted} | {r.missed} | {r.stale} | "
            f"{kids} | {r.rate_limited} | {r.retry_after_served_s:.0f} | {waited} | "
            f"{r.returncode} | {r.load_1min:.2f} |"
        )
    ours = results[0]
    unselected = (
        set() if opts.per_issue_streams else {"issue_watchers", "issue_votes", "issue_remote_links"}
    )
    print(
        "\nour requests per issue, by per-issue child stream: "
        + ", ".join(
            f"{k} not selected (--per-issue-streams)"
            if k in unselected
            else f"{k} {n / opts.issues:.3f}"
            for k, n in ours.per_stream.items()
        )
    )
    if len(results) == 2 and results[1].wall_s:
        ours, peer = results
        print(
            f"\nwall time ours/peer: {ours.wall_s / peer.wall_s:.2f}; "
            f"requests ours/peer: {ours.requests / max(peer.requests, 1):.2f}"
        )
        size = f"{opts.issues:,} issues"
        for measure, mine, theirs in (
            (f"{size}, wall s", ours.wall_s, peer.wall_s),
            (f"{size}, requests", ours.requests, peer.requests),
            (f"{size}, issues missed", ours.missed, peer.missed),
        ):
            figure("tap-jira-safe", measure, peer.name, mine, theirs, higher_is_better=False)
    ours = results[0]
    if ours.retry_after_served_s:
        assert ours.waited_429_s is not None
        print(
            f"our 429 wait / Retry-After served: "
            f"{ours.waited_429_s / ours.retry_after_served_s:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
