"""moto + the Streams endpoint together, with helpers to make stream-enabled tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safe_singer_testing.emulators.dynamodb_streams.feed import CREDENTIALS, MotoServer
from safe_singer_testing.emulators.dynamodb_streams.model import Faults
from safe_singer_testing.emulators.dynamodb_streams.server import StreamsEmulator


@dataclass
class Stack:
    moto: MotoServer
    streams: StreamsEmulator

    def create_table(
        self,
        name: str,
        hash_key: tuple[str, str] = ("pk", "S"),
        range_key: tuple[str, str] | None = None,
        roots: int = 1,
    ) -> str:
        """A PAY_PER_REQUEST table with a stream; returns our stream ARN."""
        keys = [hash_key] + ([range_key] if range_key else [])
        self.moto.client().create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": n, "KeyType": kt}
                for (n, _), kt in zip(keys, ("HASH", "RANGE"), strict=False)
            ],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        return self.streams.attach(name, roots=roots)

    def dynamodb(self) -> Any:
        return self.moto.client("dynamodb")

    def tap_config(self, tables: list[str], **extra: Any) -> dict[str, Any]:
        """Settings for tap-dynamodb-streams pointed at this stack (whose endpoint then takes
        the secret key they carry, as AWS takes a key it issued)."""
        if extra.get("aws_secret_access_key"):
            self.streams.secrets.add(str(extra["aws_secret_access_key"]))
        return {
            "tables": tables,
            "region_name": CREDENTIALS["region_name"],
            "endpoint_url": self.moto.url,
            "streams_endpoint_url": self.streams.url,
            "aws_access_key_id": CREDENTIALS["aws_access_key_id"],
            "aws_secret_access_key": CREDENTIALS["aws_secret_access_key"],
            # Tests read at 4.5 GetRecords per shard per second (AWS allows 5; the default
            # 2.5 leaves half to a second reader), and, as the virtual clock stands still, an
            # open shard counts as caught up after 1 quiet second and 5 empty pages (an empty
            # stretch of 3 pages and then some) instead of 3. Injected empty pages need more.
            "max_get_records_per_shard_per_second": 4.5,
            "open_shard_idle_seconds": 1,
            # The suite injects transient ResourceNotFound at up to 20% of calls: with the
            # default 4 retries, five in a row ended 2 of 30 seeded runs of that test; with 8
            # (nine in a row), 0 of 30. A shard that is really gone fails after ~21 s, not 3 s.
            "not_found_retries": 8,
            **extra,
        }

    def stop(self) -> None:
        self.streams.stop()
        self.moto.stop()


def start_stack(faults: Faults | None = None) -> Stack:
    moto = MotoServer().start()
    try:
        streams = StreamsEmulator(faults, moto_url=moto.url).start()
    except BaseException:
        moto.stop()
        raise
    return Stack(moto, streams)
