"""Reading one table's stream: shards in lineage order, several at once, within AWS's limits.

Worker threads (at most ``max_parallel_shards``) each follow one shard's iterator and hand its
pages, in order, to the caller's thread through one bounded queue. A shard that must wait
before its next call (the pace, or an open shard polled while quiet) is parked with its cursor
and gives its thread to another shard, so the waits of many quiet open shards overlap instead
of queueing behind each other. Only the caller's thread touches the ledger (the state): a
position moves after the caller took the record, and a shard counts as ended only after the
caller took its last page, so a child shard starts only after every event of its parent went
out. What a worker fetched beyond that is simply read again by the next run.

A thread with nothing else to do probes a child whose parent is still being read: it follows
the child's empty pages (they only move its iterator on), so a quiet open child can count as
caught up by the time its parent ends. A probe hands over no page: when it meets a record or
the child's end it goes back to the child's start position and waits for the parent's end.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from tap_dynamodb_streams.client import AwsClients
from tap_dynamodb_streams.errors import (
    AwsCallFailed,
    ExpiredIterator,
    InvalidPosition,
    MalformedResponse,
    ResourceNotFound,
    TrimmedData,
)
from tap_dynamodb_streams.lag import LagGauge
from tap_dynamodb_streams.lineage import ShardLedger, StreamGapError, gap, vanished
from tap_dynamodb_streams.schedule import Cursor, Parked, Schedule, held
from tap_dynamodb_streams.settings import TapSettings

LOG = logging.getLogger("tap-dynamodb-streams.reader")
# An open shard that answered an empty page is polled again after this long at the soonest:
# AWS Lambda "polls shards in your DynamoDB stream for records at a base rate of 4 times per
# second" (Lambda Developer Guide, "Using AWS Lambda with Amazon DynamoDB"). Pages with
# records are followed at once (as Lambda does until it caught up), closed shards too.
QUIET_POLL_SECONDS = 0.25


class Outcome(Enum):
    ENDED = "ended"  # every tracked shard is closed and fully read
    CAUGHT_UP = "caught_up"  # open shards reached the run's start (or stayed idle)
    OUT_OF_TIME = "out_of_time"  # max_run_seconds reached; the state holds the positions


@dataclass
class _Page:
    shard_id: str
    records: list[dict[str, Any]]
    ended: bool
    fetched_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class _Stopped:
    shard_id: str
    outcome: Outcome


@dataclass
class _Failed:
    shard_id: str
    error: BaseException


@dataclass
class _Children:
    """A ``ShardFilter`` CHILD_SHARDS answer for ``parent``; None: ask the full listing."""

    parent: str
    shards: dict[str, dict[str, Any]] | None


@dataclass
class _Run:
    """What one ``read`` call shares with its workers."""

    arn: str
    listing: dict[str, dict[str, Any]]
    deadline: float
    not_before: float  # server epoch seconds: an open shard stops at events after this
    pages: queue.Queue[_Page | Parked | _Stopped | _Failed | _Children] = field(
        default_factory=lambda: queue.Queue(maxsize=64)
    )
    stop: threading.Event = field(default_factory=threading.Event)
    # Workers between their start and their last hand-over: a thread is free again before
    # the caller took its last page, so the next shard need not wait for that page's records.
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self.lock:
            self.busy -= 1


def created_at(event: dict[str, Any]) -> float:
    value = event["dynamodb"]["ApproximateCreationDateTime"]
    return value.timestamp() if isinstance(value, datetime) else float(value)


def checked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record has the two fields the reader relies on, or the page is malformed."""
    try:
        for record in records:
            str(record["dynamodb"]["SequenceNumber"])
            created_at(record)
    except (KeyError, TypeError, ValueError) as err:
        raise MalformedResponse(
            f"GetRecords answered a record without a usable dynamodb.{err}"
        ) from None
    return records


class StreamReader:
    """One table's change events, shard by shard in lineage order, several shards at once."""

    def __init__(self, aws: AwsClients, table: str, settings: TapSettings) -> None:
        self.aws = aws
        self.table = table
        self.settings = settings
        self.stream_status: str | None = None
        self.lag = LagGauge(aws, table, settings.lag_warning_hours)
        self.extracted_at = datetime.now(timezone.utc)  # when the events being yielded came
        self._filter_works = True  # DescribeStream honours ShardFilter (see _adopt)

    # -- the caller's thread -----------------------------------------------------------------
    def read(
        self,
        arn: str,
        ledger: ShardLedger,
        deadline: float,
        progress: Callable[[], None],
    ) -> Generator[tuple[str, dict[str, Any]], None, Outcome]:
        """Yield (shard id, event); positions move once the caller resumed after an event."""
        first_listing = not ledger.entries
        done_this_run: set[str] = set()
        not_before = self.aws.server_time()
        with ThreadPoolExecutor(self.settings.max_parallel_shards, "shard") as pool:
            while True:
                if done_this_run and time.monotonic() > deadline:
                    return Outcome.OUT_OF_TIME  # a relisting would only be refused
                listing = self._listing(arn)
                ledger.reconcile(listing, first_listing)
                first_listing = False
                run = _Run(arn, listing, deadline, not_before)
                outcome = yield from self._round(pool, run, ledger, done_this_run, progress)
                if outcome is not None:
                    return outcome

    def _round(
        self,
        pool: ThreadPoolExecutor,
        run: _Run,
        ledger: ShardLedger,
        done_this_run: set[str],
        progress: Callable[[], None],
    ) -> Generator[tuple[str, dict[str, Any]], None, Outcome | None]:
        """Read every shard ready in this listing, a child as soon as its parent ended; None
        when a shard ended whose children are not listed yet (a new listing may show them)."""
        running: set[str] = set()
        schedule = Schedule(ledger, run.listing, done_this_run)
        relist = False  # a shard ended whose children are not known: list the stream again
        # Children of a shard that ended are asked for alone (DescribeStream with ShardFilter
        # CHILD_SHARDS, one call, as the KCL adapter does at a shard end) while that costs
        # fewer calls than listing the whole stream once; past that, one full listing.
        lookups_left = math.ceil(len(run.listing) / 100) if self._filter_works else 0
        looking_up = 0
        try:
            while True:
                while run.busy < self.settings.max_parallel_shards:
                    cursor = schedule.next_cursor()
                    if cursor is None:
                        break
                    running.add(cursor.shard_id)
                    with run.lock:
                        run.busy += 1
                    pool.submit(self._fetch, run, cursor)
                if not running and not schedule.parked and not looking_up:
                    if relist:
                        return None
                    return Outcome.ENDED if ledger.all_ended() else Outcome.CAUGHT_UP
                # A due parked shard needs a free thread; with none, the next item frees one.
                free = run.busy < self.settings.max_parallel_shards
                item = self._next(run, schedule.due_at() if free else None)
                if item is None:
                    continue  # a parked shard is due
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Children):
                    looking_up -= 1
                    relist = self._adopt(item, run, ledger, schedule) or relist
                    continue
                if isinstance(item, Parked):
                    running.discard(item.cursor.shard_id)
                    schedule.park(item)
                    continue
                if isinstance(item, _Stopped):
                    running.discard(item.shard_id)
                    done_this_run.add(item.shard_id)
                    if item.outcome is Outcome.OUT_OF_TIME:
                        return Outcome.OUT_OF_TIME
                    continue
                entry = ledger.entry(item.shard_id)
                self.extracted_at = item.fetched_at
                for event in item.records:
                    yield item.shard_id, event
                    entry["sequence_number"] = event["dynamodb"]["SequenceNumber"]
                if item.records:
                    entry["at"] = int(created_at(item.records[-1]))
                    self.lag.newest(item.shard_id, created_at(item.records[-1]))
                if item.ended:
                    entry["ended"] = True
                    running.discard(item.shard_id)
                    schedule.ended(item.shard_id)
                    if item.shard_id not in schedule.children and lookups_left > 0:
                        lookups_left -= 1
                        looking_up += 1
                        with run.lock:
                            run.busy += 1
                        pool.submit(self._find_children, run, item.shard_id)
                    elif item.shard_id not in schedule.children:
                        relist = True
                if item.records or item.ended:
                    progress()
                    self.lag.log()
        finally:
            run.stop.set()

    def _adopt(self, found: _Children, run: _Run, ledger: ShardLedger, schedule: Schedule) -> bool:
        """Learn the children a filtered DescribeStream found; True: list the stream instead
        (the call failed, or found none on an enabled stream, or the endpoint ignored the
        filter, in which case it is not asked again this run)."""
        shards = found.shards
        if shards is None:
            return True
        if any(s.get("ParentShardId") != found.parent for s in shards.values()):
            LOG.info(
                "Table %r: DescribeStream ignored ShardFilter CHILD_SHARDS: listing the whole "
                "stream at shard ends",
                self.table,
            )
            self._filter_works = False
            return True
        if not shards:
            return self.stream_status != "DISABLED"  # a disabled stream's shards have none
        run.listing.update(shards)
        ledger.adopt_children(found.parent, shards)
        schedule.adopt_children(found.parent, list(shards))
        return False

    def _find_children(self, run: _Run, parent: str) -> None:
        children: dict[str, dict[str, Any]] | None = None
        try:
            description, children = self.aws.describe_stream(run.arn, children_of=parent)
            self.stream_status = description.get("StreamStatus")
        except (AwsCallFailed, InvalidPosition, ResourceNotFound) as err:
            LOG.info(
                "Table %r: children of shard %s: %s; listing the stream", self.table, parent, err
            )
        finally:
            run.release()
        self._put(run, _Children(parent, children))

    def _next(
        self, run: _Run, until: float | None
    ) -> _Page | Parked | _Stopped | _Failed | _Children | None:
        """The next item from a worker; None once ``until`` (monotonic) passed without one."""
        while True:
            timeout = 1.0 if until is None else min(1.0, max(0.0, until - time.monotonic()))
            try:
                return run.pages.get(timeout=timeout)
            except queue.Empty:
                if until is not None and time.monotonic() >= until:
                    return None
                if time.monotonic() > run.deadline + 300:
                    return _Failed("", TimeoutError(f"Table {self.table!r}: shard reads hung"))

    def _listing(self, arn: str) -> dict[str, dict[str, Any]]:
        description, listing = self.aws.describe_stream(arn)
        self.stream_status = description.get("StreamStatus")
        view = description.get("StreamViewType")
        if view not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            raise gap(
                self.table,
                f"stream view type {view} carries no new item image; enable NEW_IMAGE or "
                "NEW_AND_OLD_IMAGES",
            )
        return listing

    # -- worker threads -------------------------------------------------------------------
    def _fetch(self, run: _Run, cursor: Cursor) -> None:
        item: _Page | Parked | _Stopped | _Failed | None
        try:
            last = self._follow(run, cursor)
            item = _Stopped(cursor.shard_id, last) if isinstance(last, Outcome) else last
        except BaseException as err:  # handed to the caller's thread, which raises it
            # A probe's error is met again, in order, when the child is read for real.
            item = held(cursor) if cursor.probe else _Failed(cursor.shard_id, err)
        finally:
            run.release()
        if item is not None:
            self._put(run, item)

    def _put(self, run: _Run, item: _Page | Parked | _Stopped | _Failed | _Children) -> bool:
        while not run.stop.is_set():
            try:
                run.pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _follow(self, run: _Run, cursor: Cursor) -> Outcome | Parked | _Page | None:
        """Hand this shard's pages over until its last (returned), until caught up or out of
        time, or until it has to wait for its next call (parked); None once the run stopped."""
        shard_id = cursor.shard_id
        if time.monotonic() > run.deadline:
            return Outcome.OUT_OF_TIME
        if cursor.iterator is None:
            cursor.iterator = self._iterator(run, shard_id, cursor.position)
        pace = (
            1.0 / self.settings.max_get_records_per_shard_per_second
            if self.settings.max_get_records_per_shard_per_second
            else 0.0
        )
        listed_open = "EndingSequenceNumber" not in run.listing[shard_id]["SequenceNumberRange"]
        # AWS's empty stretches are counted in calls and a new run walks them again, so idle
        # also needs the empty pages the pace allows in idle_seconds: time lost to throttling
        # backoff or slow answers must not cut a stretch short (the shard would never pass it).
        # Unpaced, quiet open shards are still polled at QUIET_POLL_SECONDS: count at that rate.
        rate = self.settings.max_get_records_per_shard_per_second or 1 / QUIET_POLL_SECONDS
        idle_pages = max(1, math.ceil(self.settings.open_shard_idle_seconds * rate))
        while not run.stop.is_set():
            now = time.monotonic()
            if now > run.deadline:
                return Outcome.OUT_OF_TIME
            quiet_poll = listed_open and cursor.empty_pages > 0
            due = cursor.last_call + (max(pace, QUIET_POLL_SECONDS) if quiet_poll else pace)
            if now < due:
                return Parked(cursor, min(due, run.deadline))
            cursor.last_call = now
            try:
                page = self.aws.records(cursor.iterator, self.settings.max_records_per_request)
            except ExpiredIterator:
                self._renew(run, cursor)
                continue
            except ResourceNotFound:
                if cursor.probe:  # met again when read for real (not via _fetch's 2nd look)
                    return held(cursor)
                cursor.not_found = self._not_found(run, shard_id, cursor.position, cursor.not_found)
                if cursor.not_found < 0:
                    return _Page(shard_id, [], ended=True)
                self._renew(run, cursor)
                continue
            except TrimmedData:
                raise self._trimmed(shard_id, cursor.position) from None
            except MalformedResponse as err:
                raise self._malformed(shard_id, err) from None
            cursor.not_found = 0
            try:
                records = checked(page["Records"])
            except MalformedResponse as err:
                raise self._malformed(shard_id, err) from None
            next_iterator = page.get("NextShardIterator")
            if (records or next_iterator is None) and cursor.probe:
                return held(cursor)
            cursor.empty_pages = 0 if records else cursor.empty_pages + 1
            if records:
                cursor.last_record = time.monotonic()
                cursor.position = {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "SequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                }
            if next_iterator is None:
                return _Page(shard_id, records, ended=True)
            if records and not self._put(run, _Page(shard_id, records, ended=False)):
                return None
            if records and created_at(records[-1]) > run.not_before + 1:
                # Written after this run began (the Date header has whole seconds): later
                # events are left for the next run, so a busy shard cannot hold a run forever.
                return Outcome.CAUGHT_UP
            quiet = time.monotonic() - cursor.last_record > self.settings.open_shard_idle_seconds
            if quiet and cursor.empty_pages >= idle_pages and listed_open:
                self._log_idle(
                    shard_id,
                    cursor.position,
                    time.monotonic() - cursor.last_record,
                    cursor.empty_pages,
                )
                return Outcome.CAUGHT_UP  # open and quiet; a closed shard is followed on
            cursor.iterator = next_iterator
        return None

    def _renew(self, run: _Run, cursor: Cursor) -> None:
        """A new iterator from the last emitted position walks any empty stretch again, so
        the empty pages of the old one no longer count towards idle."""
        cursor.iterator = self._iterator(run, cursor.shard_id, cursor.position)
        cursor.empty_pages = 0

    def _log_idle(
        self, shard_id: str, position: dict[str, str], seconds: float, pages: int
    ) -> None:
        """Caught up is a guess on an open shard (no MillisBehindLatest): say what it rests on."""
        LOG.info(
            "Table %r: open shard %s returned no record for %.1f s (%d empty pages) after "
            "sequence number %s; counted as caught up for this run (open_shard_idle_seconds): "
            "later events, or any behind a longer empty stretch, are read by the next run.",
            self.table,
            shard_id,
            seconds,
            pages,
            position.get("SequenceNumber") or "the run's start position",
        )

    def _iterator(self, run: _Run, shard_id: str, position: dict[str, str]) -> str:
        """An iterator at ``position``; a child's exact start falls back to TRIM_HORIZON.

        AWS documents no rule for AT_SEQUENCE_NUMBER at a StartingSequenceNumber that no record
        carries, and the KCL adapter starts such children at TRIM_HORIZON. Asking for the exact
        start first keeps TrimmedDataAccessException (a gap) loud when the child's first events
        aged out; only a ValidationException falls back.
        """
        for attempt in range(self.settings.not_found_retries + 1):
            try:
                try:
                    return self.aws.shard_iterator(run.arn, shard_id, position)
                except InvalidPosition:
                    if position.get("ShardIteratorType") != "AT_SEQUENCE_NUMBER":
                        raise
                    return self.aws.shard_iterator(
                        run.arn, shard_id, {"ShardIteratorType": "TRIM_HORIZON"}
                    )
            except TrimmedData:
                raise self._trimmed(shard_id, position) from None
            except ResourceNotFound:
                if attempt == self.settings.not_found_retries:
                    break  # no wait (nor "retrying" line) after the last try
                self._wait_not_found(run, shard_id, attempt)
        raise vanished(self.table, shard_id, position.get("SequenceNumber"))

    def _not_found(self, run: _Run, shard_id: str, position: dict[str, str], tries: int) -> int:
        """GetRecords said ResourceNotFound for a listed shard: usually transient, so retry.

        Returns the new try count, or -1 when the shard provably was read to its end (our
        position is its listed EndingSequenceNumber). Raises the vanished-shard gap when the
        retries run out.
        """
        ending = run.listing[shard_id]["SequenceNumberRange"].get("EndingSequenceNumber")
        if ending is not None and position.get("SequenceNumber") == ending:
            return -1
        if tries >= self.settings.not_found_retries:
            raise vanished(self.table, shard_id, position.get("SequenceNumber"))
        self._wait_not_found(run, shard_id, tries)
        return tries + 1

    def _wait_not_found(self, run: _Run, shard_id: str, attempt: int) -> None:
        wait = min(0.2 * 2**attempt, 5.0)
        LOG.info(
            "Table %r: shard %s answered ResourceNotFound while listed; retrying in %.1f s "
            "(attempt %d of %d)",
            self.table,
            shard_id,
            wait,
            attempt + 1,
            self.settings.not_found_retries,
        )
        run.stop.wait(wait)

    def _trimmed(self, shard_id: str, position: dict[str, str]) -> StreamGapError:
        after = position.get("SequenceNumber") or "the shard's start"
        return gap(
            self.table,
            f"shard {shard_id}: data after sequence number {after} was trimmed "
            "(older than the 24-hour retention) before it was read",
        )

    def _malformed(self, shard_id: str, err: MalformedResponse) -> StreamGapError:
        return StreamGapError(
            f"Table {self.table!r}: shard {shard_id}: {err}. Nothing after the last STATE was "
            "emitted; run again (if it persists, check the endpoint or proxy in between)."
        )
