"""Run moto + the Streams endpoint by hand:
`python -m safe_singer_testing.emulators.dynamodb_streams --table demo`."""

from __future__ import annotations

import argparse
import json
import time

from safe_singer_testing.emulators.dynamodb_streams import Faults, start_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", default="demo", help="create this stream-enabled table")
    parser.add_argument("--empty-page-rate", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    args = parser.parse_args()
    stack = start_stack(
        Faults(empty_page_rate=args.empty_page_rate, throttle_rate=args.throttle_rate)
    )
    try:
        arn = stack.create_table(args.table)
        print(
            json.dumps(
                {"dynamodb": stack.moto.url, "streams": stack.streams.url, "stream_arn": arn}
            )
        )
        print("Ctrl-C to stop", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
