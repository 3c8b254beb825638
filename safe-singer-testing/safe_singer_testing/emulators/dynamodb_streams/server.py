"""The HTTP server boto3 talks to (JSON 1.0, ``X-Amz-Target: DynamoDBStreams_20120810.<Op>``).

``StreamsEmulator`` is the Python API tests use: start/stop, the endpoint URL, controls (split,
advance the virtual clock, re-enable a stream, vanish a shard, feed writes) and the ground truth
(every event ever appended, per table, in order).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from safe_singer_testing.emulators.dynamodb_streams import api, sigv4
from safe_singer_testing.emulators.dynamodb_streams.feed import CREDENTIALS, MotoFeed
from safe_singer_testing.emulators.dynamodb_streams.model import (
    Faults,
    Record,
    StreamsError,
    StreamsModel,
)

TARGET_PREFIX = "DynamoDBStreams_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
ERROR_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"
AUTO_SYNC_INTERVAL = 0.2


def encode(payload: dict[str, Any]) -> bytes:
    records = payload.get("Records")
    if not isinstance(records, api.WireRecords):
        return json.dumps(payload).encode()
    rest = json.dumps({k: v for k, v in payload.items() if k != "Records"}).encode()
    spliced = b'{"Records":[' + b",".join(records) + b"]"
    return spliced + (b"," + rest[1:] if rest != b"{}" else b"}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (~40 ms on Linux), a stall no AWS endpoint has.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        target = self.headers.get("X-Amz-Target", "")
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            region = CREDENTIALS["region_name"]
            sigv4.check("POST", self.path, headers, raw, self.server.emulator.secrets, region)
        except StreamsError as err:
            status, payload = err.status, self.server.emulator.refusal(err)
        else:
            status, payload = self.server.emulator.handle(target, raw)
        body = encode(payload)
        latency = self.server.emulator.model.faults.call_latency_seconds
        if latency:
            time.sleep(latency)  # outside the lock: calls in flight overlap, as on AWS
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "emulator")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header tells the virtual time, as AWS's tells its own."""
        return format_datetime(self.server.emulator.model.now(), usegmt=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: StreamsEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A reader killed mid-request (the SIGKILL tests) is not the endpoint's error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StreamsEmulator:
    """A DynamoDB Streams endpoint on 127.0.0.1:0 over a virtual-clock shard model."""

    def __init__(self, faults: Faults | None = None, moto_url: str | None = None) -> None:
        self.model = StreamsModel(faults)
        self.lock = threading.RLock()
        self.feed = MotoFeed(self.model, moto_url) if moto_url else None
        self._last_sync = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._triggers: list[tuple[str, int, Callable[[], object]]] = []
        # Secret keys whose signatures pass (sigv4.py); Stack.tap_config adds the tap's.
        self.secrets: set[str] = {CREDENTIALS["aws_secret_access_key"]}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> StreamsEmulator:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> StreamsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- wire ------------------------------------------------------------------------------
    def handle(self, target: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        operation = target.removeprefix(TARGET_PREFIX)
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            try:
                if not target.startswith(TARGET_PREFIX):
                    raise StreamsError("UnknownOperationException", f"Unknown target {target}")
                self._auto_sync()
                answer = api.call(self.model, operation, json.loads(raw or b"{}"))
            except StreamsError as err:
                return err.status, self.refusal(err)
            self._fire(operation)
            return 200, answer

    def _fire(self, operation: str) -> None:
        due = [t for t in self._triggers if t[0] == operation and self.calls[operation] >= t[1]]
        for trigger in due:
            self._triggers.remove(trigger)
            trigger[2]()

    def refusal(self, err: StreamsError) -> dict[str, Any]:
        with self.lock:
            self.errors[err.code] = self.errors.get(err.code, 0) + 1
        return {"__type": ERROR_NAMESPACE + err.code, "message": err.message}

    def _auto_sync(self) -> None:
        """Writes made while a reader runs reach the shards without the test calling sync()."""
        if self.feed is not None and time.monotonic() - self._last_sync > AUTO_SYNC_INTERVAL:
            self.sync()

    # -- controls --------------------------------------------------------------------------
    def attach(self, table: str, view_type: str = "NEW_AND_OLD_IMAGES", roots: int = 1) -> str:
        """Mirror a moto table's writes into a new stream of ``roots`` shards; its ARN."""
        assert self.feed is not None, "attach() needs moto_url"
        with self.lock:
            return self.feed.attach(table, view_type, roots)

    def detach(self, table: str) -> None:
        """Stop mirroring ``table``'s moto stream; our stream and its events stay."""
        assert self.feed is not None, "detach() needs moto_url"
        with self.lock:
            self.feed.detach(table)

    def sync(self) -> int:
        """Move every write made in moto so far into the shards."""
        with self.lock:
            self._last_sync = time.monotonic()
            return self.feed.pull() if self.feed is not None else 0

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.model.advance(seconds)

    def split(self, table: str, limit: int | None = None) -> list[str]:
        with self.lock:
            self.sync()
            return self.model.split(table, limit)

    def mark_ttl_deletions(self, table: str, count: int) -> None:
        """The last ``count`` events of ``table`` become TTL deletions (REMOVE by the
        DynamoDB service principal, as in Developer Guide "Time to Live: streams")."""
        with self.lock:
            self.sync()
            mine = [r for arn, _, r in self.model.history if arn.split("/")[1] == table]
            for record in mine[-count:]:
                assert record.event_name == "REMOVE", "only deletions can be TTL deletions"
                record.wire = None  # re-encoded with its userIdentity
                record.user_identity = {
                    "type": "Service",
                    "principalId": "dynamodb.amazonaws.com",
                }

    def reenable_stream(self, table: str) -> str:
        with self.lock:
            self.sync()
            return self.model.reenable_stream(table)

    def disable_stream(self, table: str) -> None:
        with self.lock:
            self.sync()
            self.model.disable_stream(table)

    def vanish_shard(self, table: str, shard_id: str) -> None:
        with self.lock:
            for stream in self.model.streams.values():
                if stream.table == table and shard_id in stream.shards:
                    self.model.vanish_shard(stream.arn, shard_id)
                    return
        raise KeyError(f"no shard {shard_id} for table {table}")

    def after_calls(self, operation: str, count: int, action: Callable[[], object]) -> None:
        """Run ``action`` once ``count`` calls of ``operation`` were answered (the answer of
        the last one is made before it): a change at a chosen moment of a reader's run."""
        with self.lock:
            self._triggers.append((operation, count, action))

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.model.faults = faults

    def append(
        self,
        table: str,
        event_name: str,
        new_image: dict[str, Any] | None,
        old_image: dict[str, Any] | None = None,
    ) -> Record | None:
        """Append an event directly (benchmarks; tests normally write through moto)."""
        with self.lock:
            return self.model.append(table, event_name, new_image, old_image)

    def create_stream(
        self, table: str, key_schema: list[dict[str, str]], view_type: str, roots: int = 1
    ) -> str:
        """A stream for a table that exists only here (benchmarks)."""
        with self.lock:
            return self.model.create_stream(table, key_schema, view_type, roots=roots)

    # -- ground truth ----------------------------------------------------------------------
    def events(self, table: str) -> list[dict[str, Any]]:
        """Every event appended for ``table``, in append order, with where it went."""
        with self.lock:
            return [
                {
                    "stream_arn": arn,
                    "shard_id": shard_id,
                    "sequence_number": str(r.sequence_number),
                    "event_name": r.event_name,
                    "keys": r.keys,
                    "new_image": r.new_image,
                    "old_image": r.old_image,
                }
                for arn, shard_id, r in self.model.history
                if arn.split("/")[1] == table
            ]

    def reads(self) -> list[str]:
        """The shard each GetRecords call asked for, in call order (every table)."""
        with self.lock:
            return list(self.model.reads)

    def shards(self, table: str) -> list[dict[str, Any]]:
        with self.lock:
            stream = self.model.current_stream(table)
            return [
                {
                    "shard_id": s.shard_id,
                    "parent_id": s.parent_id,
                    "closed": s.closed,
                    "records": len(s.records),
                }
                for s in stream.shards.values()
            ]
