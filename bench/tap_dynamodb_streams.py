"""tap-dynamodb-streams vs singer-io tap-dynamodb (PyPI, LOG_BASED), side by side, one run.

Both taps read the same Streams endpoint (``safe_singer_testing.emulators.dynamodb_streams``,
real HTTP) with moto as the table service. Prints markdown tables:

- throughput at 1, 64 and 1,024 shards: events/s reading ``--events`` change events spread over
  the shards, whole process included (start-up counts), for ours in one process, ours as 4
  partitions (4 processes at once, wall time of the slowest) and the peer; plus one shard at
  ``--events`` and ten times as many. The events sit in closed shards (the peer reads only
  closed shards; their children are open and empty). Runs of up to 64 shards and 50,000
  events are made three times, in turns, each from a fresh state, and the fastest counts
  (the least disturbed by other load on a shared machine); missed and exit are the worst;
- completeness: after an initial run, ``--writes`` writes, then one more run of each tap, in
  three scenarios (writes in open shards; a split in the middle; a split and iterator expiry
  while reading): events emitted and events missed.

Throughput runs use the endpoint without its AWS rate limits and empty stretches, and ours
unpaced (DescribeStream at AWS's 10 a second) with a 0.5 s open-shard idle time
(``UNPACED``): they measure the readers, not a limit both would hit. Every call there answers
after ``BENCH_CALL_LATENCY_SECONDS`` (10 ms, see
``safe_singer_testing.emulators.dynamodb_streams.model``), as AWS answers over a network, for
both taps.
The completeness runs use the AWS-faithful endpoint and ours with its defaults.

Each tap runs from a venv of its own, as Meltano installs plugins: ours is installed (not
editable) from ``tap-dynamodb-streams/`` into ``bench/.venvs/tap-dynamodb-streams`` at every
run, so the code measured is the checkout's. The repo's dev venv would cost ours start-up time a
user's plugin venv does not have (its ~200 distributions, whose entry points fsspec scans when
singer-sdk imports it). The peer is installed into ``bench/.venvs/tap-dynamodb`` with uv when
missing. Its boto3 (1.14) has no endpoint setting except a hard-coded localhost:8000, so it
runs under a shim that points its boto3 clients at our ephemeral ports
(``bench/peers/tap_dynamodb_shim.py``).

Usage: ``.venv/bin/python bench/tap_dynamodb_streams.py [--events 20000] [--writes 300]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.figures import figure  # noqa: E402
from safe_singer_testing.cli import BIN  # noqa: E402
from safe_singer_testing.emulators.dynamodb_streams import Faults, Stack, start_stack  # noqa: E402
from safe_singer_testing.emulators.dynamodb_streams.feed import CREDENTIALS  # noqa: E402
from safe_singer_testing.emulators.dynamodb_streams.model import BENCH_CALL_LATENCY_SECONDS  # noqa: E402

PEER_VENV = REPO / "bench" / ".venvs" / "tap-dynamodb"
OURS_VENV = REPO / "bench" / ".venvs" / "tap-dynamodb-streams"
PEER_PACKAGE = "tap-dynamodb"
SHIM = REPO / "bench" / "peers" / "tap_dynamodb_shim.py"
TABLE = "bench_events"
COMPONENT = "tap-dynamodb-streams"
# Throughput runs: no GetRecords pacing (the endpoint has no rate limits there either),
# DescribeStream at AWS's documented 10 calls a second (the default, 5, leaves half to other
# readers of the stream; the peer does not pace at all), and an open shard counts as caught up
# after 0.5 quiet seconds (no empty stretches there either).
UNPACED = {
    "max_get_records_per_shard_per_second": 0,
    "describe_stream_per_second": 10,
    "open_shard_idle_seconds": 0.5,
}
OURS = "ours, 1 process"
PARTITIONS = "ours, 4 partitions"
PEER = "singer-io tap-dynamodb"
MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "rc = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'w')).returncode; "
    "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def ensure_peer() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        uv = str(BIN / "uv")
        subprocess.run([uv, "venv", "-q", str(PEER_VENV), "--python", sys.executable], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), PEER_PACKAGE], check=True
        )
    return python


def install_ours() -> Path:
    """Ours, from this checkout, into its own venv (reinstalled: the code may have changed)."""
    python = OURS_VENV / "bin" / "python"
    uv = str(BIN / "uv")
    if not python.exists():
        subprocess.run([uv, "venv", "-q", str(OURS_VENV), "--python", sys.executable], check=True)
    install = [uv, "pip", "install", "-q", "--python", str(python)]
    subprocess.run([*install, "--reinstall-package", COMPONENT, str(REPO / COMPONENT)], check=True)
    return python


def compile_bytecode(python: Path) -> None:
    """Write .pyc files for a venv once (this machine sets PYTHONDONTWRITEBYTECODE, so every
    process would otherwise compile its imports again and we would time the compiler)."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", site], check=False)


def measured(command: list[str], out: Path, env: dict[str, str]) -> tuple[int, float, int]:
    """Exit code, wall seconds and peak RSS (KiB) of one process; its stdout goes to ``out``."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(out), *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    rc, seconds, rss = done.stdout.split()
    return int(rc), float(seconds), int(rss)


def messages(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


class Ours:
    name = "tap-dynamodb-streams"

    def __init__(self, stack: Stack, work: Path, **settings: Any) -> None:
        self.stack, self.work, self.settings = stack, work, settings
        self.state: dict[str, Any] | None = None

    def run(self, tag: str) -> tuple[list[dict[str, Any]], int, float, int]:
        config = self.work / f"ours-{tag}-config.json"
        settings = {"max_run_seconds": 600, **self.settings}
        config.write_text(json.dumps(self.stack.tap_config([TABLE], **settings)))
        command = [str(OURS_VENV / "bin" / COMPONENT), "--config", str(config)]
        if self.state is not None:
            state = self.work / f"ours-{tag}-state.json"
            state.write_text(json.dumps(self.state))
            command += ["--state", str(state)]
        out = self.work / f"ours-{tag}.jsonl"
        rc, seconds, rss = measured(command, out, dict(os.environ))
        found = messages(out)
        states = [m["value"] for m in found if m["type"] == "STATE"]
        self.state = states[-1] if states else self.state
        return [m["record"] for m in found if m["type"] == "RECORD"], rc, seconds, rss


class Peer:
    name = "singer-io tap-dynamodb (LOG_BASED)"

    def __init__(self, stack: Stack, work: Path, python: Path) -> None:
        self.stack, self.work, self.python = stack, work, python
        self.state: dict[str, Any] = {}
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "PEER_DYNAMODB_URL": stack.moto.url,
            "PEER_STREAMS_URL": stack.streams.url,
        }
        self.config = work / "peer-config.json"
        self.config.write_text(
            json.dumps(
                {
                    "region_name": CREDENTIALS["region_name"],
                    "use_local_dynamo": True,
                    "account_id": "123456789012",
                    "external_id": "bench",
                    "role_name": "bench",
                }
            )
        )
        self.catalog = work / "peer-catalog.json"

    def command(self, *args: str) -> list[str]:
        return [str(self.python), str(SHIM), "--config", str(self.config), *args]

    def discover(self) -> None:
        out = subprocess.run(
            self.command("--discover"), capture_output=True, text=True, env=self.env, check=True
        ).stdout
        catalog = json.loads(out)
        for stream in catalog["streams"]:
            for entry in stream["metadata"]:
                if entry["breadcrumb"] == []:
                    entry["metadata"].update(selected=True, **{"replication-method": "LOG_BASED"})
        self.catalog.write_text(json.dumps(catalog))

    def run(self, tag: str) -> tuple[list[dict[str, Any]], int, float, int]:
        state = self.work / f"peer-{tag}-state.json"
        state.write_text(json.dumps(self.state))
        out = self.work / f"peer-{tag}.jsonl"
        command = self.command("--catalog", str(self.catalog), "--state", str(state))
        rc, seconds, rss = measured(command, out, self.env)
        found = messages(out)
        states = [m["value"] for m in found if m["type"] == "STATE"]
        self.state = states[-1] if states else self.state
        return [m["record"] for m in found if m["type"] == "RECORD"], rc, seconds, rss


def new_stack(faults: Faults | None = None, shards: int = 1) -> Stack:
    stack = start_stack(faults)
    stack.create_table(TABLE, roots=shards)
    return stack


def append_writes(stack: Stack, first: int, count: int) -> None:
    """``count`` change events (INSERT of new keys), each carrying its write number ``w``."""
    for w in range(first, first + count):
        image = {"pk": {"S": f"k{w:07d}"}, "w": {"N": str(w)}, "payload": {"S": "x" * 64}}
        stack.streams.append(TABLE, "INSERT", image)


def warm_up(stack: Stack) -> None:
    """Read the stream once so the endpoint has encoded every record before anyone is timed."""
    streams = boto3_streams(stack)
    arn = streams.list_streams(TableName=TABLE)["Streams"][0]["StreamArn"]
    request = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        for shard in description["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = streams.get_records(ShardIterator=iterator)
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        if "LastEvaluatedShardId" not in description:
            return
        request["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def boto3_streams(stack: Stack) -> Any:
    import boto3

    return boto3.client("dynamodbstreams", endpoint_url=stack.streams.url, **CREDENTIALS)


def peer_after_full_table(stack: Stack, work: Path, python: Path) -> Peer:
    """The peer, as after its initial full-table sync (LOG_BASED reads the stream next)."""
    peer = Peer(stack, work, python)
    peer.discover()
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    peer.state = {
        "bookmarks": {
            TABLE: {
                "initial_full_table_complete": True,
                "success_timestamp": now,
                "last_replication_method": "LOG_BASED",
            }
        }
    }
    return peer


def partitions(stack: Stack, work: Path, count: int) -> tuple[set[int], int, float]:
    """Ours as ``count`` partitions at once: backlog events seen, worst exit, wall seconds."""
    taps = [Ours(stack, work, partition=f"{i}/{count}", **UNPACED) for i in range(count)]
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda t: t[1].run(f"part{t[0]}"), enumerate(taps)))
    seconds = time.perf_counter() - started
    seen = {int(r["w"]) for records, *_ in results for r in records}
    return seen, max(rc for _, rc, _, _ in results), seconds


def repeats_for(shards: int, events: int) -> int:
    """Short runs are repeated and the fastest kept: on a shared machine the fastest of a few
    runs is the one least disturbed by other load (as ``timeit`` does). Long runs once."""
    return 3 if shards <= 64 and events <= 50_000 else 1


def throughput(work: Path, peer_python: Path | None, shards: int, events: int) -> list[str]:
    """Rows for one stream of ``shards`` shards holding ``events`` events in closed shards."""
    rows = []
    stack = new_stack(Faults.lenient(), shards)
    try:
        append_writes(stack, 0, events)
        stack.streams.split(TABLE)  # the data sits in closed shards
        warm_up(stack)
        # Every call answers after the network latency of AWS (both taps see the same).
        stack.streams.set_faults(Faults.lenient(call_latency_seconds=BENCH_CALL_LATENCY_SECONDS))
        load = os.getloadavg()[0]
        # Each run starts from a fresh state; in turns, so that load changes hit every tap.
        runs: dict[str, Callable[[int], tuple[set[int], int, float]]] = {
            OURS: lambda n: ours_once(stack, work, f"t{shards}-{n}"),
        }
        if shards > 1:
            runs[PARTITIONS] = lambda n: partitions(stack, work, 4)
        if peer_python is not None:
            runs[PEER] = lambda n: peer_once(stack, work, peer_python, f"t{shards}-{n}")
        results: dict[str, list[tuple[set[int], int, float]]] = {name: [] for name in runs}
        for n in range(repeats_for(shards, events)):
            for name, run in runs.items():
                results[name].append(run(n))
        rates: dict[str, float] = {}
        for name, done in results.items():
            missed = max(len(set(range(events)) - seen) for seen, _, _ in done)
            worst_exit = max(rc for _, rc, _ in done)
            seconds = min(s for _, _, s in done)
            rates[name] = (events - missed) / seconds
            rows.append(
                f"| {shards:,} | {name} | {events:,} | {missed} | {worst_exit} | {seconds:.1f} "
                f"| {rates[name]:,.0f} | {load:.1f} |"
            )
        if PEER in rates:
            for name, measure in ((OURS, ""), (PARTITIONS, ", ours as 4 partitions")):
                if name not in rates:
                    continue
                figure(
                    COMPONENT,
                    f"events/s, {shards:,} shards, {events:,} events{measure}",
                    PEER,
                    rates[name],
                    rates[PEER],
                    higher_is_better=True,
                )
                label = name.replace("ours, ", "ours (") + ")"
                ratio = rates[name] / rates[PEER]
                rows.append(f"| {shards:,} | {label} / peer | | | | | **{ratio:.2f}x** | |")
    finally:
        stack.stop()
    return rows


def ours_once(stack: Stack, work: Path, tag: str) -> tuple[set[int], int, float]:
    records, rc, seconds, _ = Ours(stack, work, **UNPACED).run(tag)
    return {int(r["w"]) for r in records}, rc, seconds


def peer_once(stack: Stack, work: Path, python: Path, tag: str) -> tuple[set[int], int, float]:
    records, rc, seconds, _ = peer_after_full_table(stack, work, python).run(tag)
    return {int(r["w"]) for r in records}, rc, seconds


def shard_ends(work: Path, shards: int, ending: int | None) -> list[str]:
    """DescribeStream calls per shard end: ``ending`` open shards (None: all) close right
    after a run listed the stream, so each of their ends meets children the run's listing
    does not show (the shards of a big table roll over at different times: a few a run)."""
    stack = new_stack(Faults.lenient(), shards)
    try:
        append_writes(stack, 0, shards)
        tap = Ours(stack, work, **UNPACED)
        tap.run("ends-initial")  # a position in every open shard
        stack.streams.set_faults(Faults.lenient(call_latency_seconds=BENCH_CALL_LATENCY_SECONDS))
        listed = stack.streams.calls.get("DescribeStream", 0) + math.ceil(shards / 100)
        split = lambda: stack.streams.split(TABLE, ending)  # noqa: E731
        stack.streams.after_calls("DescribeStream", listed, split)
        _, rc, seconds, _ = tap.run("ends")
        calls = stack.streams.calls.get("DescribeStream", 0) - listed
        ended = sum(
            1
            for entry in (tap.state or {})["bookmarks"][TABLE]["shards"].values()
            if entry.get("ended")
        )
    finally:
        stack.stop()
    per_end = calls / ended if ended else float("nan")
    return [f"| {shards:,} | {ended:,} | {calls:,} | {per_end:.2f} | {rc} | {seconds:.1f} |"]


SCENARIOS = ("open shards", "split mid-way", "split + iterator expiry")


def completeness(work: Path, peer_python: Path | None, writes: int) -> list[str]:
    rows = []
    for scenario in SCENARIOS:
        stack = new_stack()
        try:
            taps: list[Ours | Peer] = [Ours(stack, work)]
            if peer_python is not None:
                peer = Peer(stack, work, peer_python)
                peer.discover()
                taps.append(peer)
            for tap in taps:  # the initial run: positions (and the peer's full table)
                tap.run("initial")
            half = writes // 2
            append_writes(stack, 0, half)
            if scenario != "open shards":
                stack.streams.split(TABLE)
            append_writes(stack, half, writes - half)
            missed_by: dict[str, int] = {}
            for tap in taps:
                if scenario == "split + iterator expiry":
                    stack.streams.set_faults(Faults(stall_first_get_records=1))
                records, rc, _, _ = tap.run(scenario.replace(" ", "-"))
                stack.streams.set_faults(Faults())
                seen = {int(r["w"]) for r in records if r.get("w") is not None}
                missed = writes - len(seen & set(range(writes)))
                missed_by[tap.name] = missed
                rows.append(
                    f"| {scenario} | {tap.name} | {writes} | {len(records)} | {missed} | {rc} |"
                )
            if len(missed_by) == 2:
                (_, ours), (peer_name, theirs) = missed_by.items()
                measure = f"events missed of {writes}: {scenario}"
                figure(COMPONENT, measure, peer_name, ours, theirs, higher_is_better=False)
        finally:
            stack.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="throughput events")
    parser.add_argument("--writes", type=int, default=300, help="writes per scenario")
    parser.add_argument("--skip-peer", action="store_true", help="measure ours only")
    parser.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=[1, 64, 1024],
        help="throughput and shard-end runs at these shard counts (default: 1 64 1024)",
    )
    parser.add_argument(
        "--only-shard-ends", action="store_true", help="measure DescribeStream per shard end only"
    )
    args = parser.parse_args()
    peer_python = None if args.skip_peer else ensure_peer()
    for python in [install_ours()] + ([peer_python] if peer_python else []):
        compile_bytecode(python)
    load = os.getloadavg()
    scratch = REPO / "bench" / "out"  # gitignored
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        work = Path(tmp)
        print(
            f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            f"on {os.cpu_count()} CPUs (shared machine)\n"
        )
        print(
            "| shards | shard ends | DescribeStream calls after the listing | per shard end "
            "| exit | seconds |\n|---:|---:|---:|---:|---:|---:|"
        )
        for shards in args.shards:
            for ending in [*sorted({1, min(8, shards)}), None]:
                for line in shard_ends(work, shards, ending):
                    print(line, flush=True)
        if args.only_shard_ends:
            return 0
        print(
            "\n| shards | tap | events | missed | exit | seconds | events/s | load avg |\n"
            "|---:|---|---:|---:|---:|---:|---:|---:|"
        )
        sizes = [(s, args.events) for s in args.shards]
        if 1 in args.shards:
            sizes.insert(1, (1, args.events * 10))
        for shards, events in sizes:
            for line in throughput(work, peer_python, shards, events):
                print(line, flush=True)
        print("\n| scenario | tap | events | records out | events missed | exit |")
        print("|---|---|---:|---:|---:|---:|")
        for row in completeness(work, peer_python, args.writes):
            print(row, flush=True)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
