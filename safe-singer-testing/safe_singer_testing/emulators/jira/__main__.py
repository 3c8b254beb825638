"""Run the Jira emulator by hand:
``python -m safe_singer_testing.emulators.jira --issues 500 --tls``."""

from __future__ import annotations

import argparse
import json
import time

from safe_singer_testing.emulators.jira import JiraEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--zone", default="America/Los_Angeles")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--rate-limit-every", type=int, default=0)
    args = parser.parse_args()
    with JiraEmulator(
        issue_count=args.issues,
        time_zone=args.zone,
        tls=args.tls,
        latency_ms=args.latency_ms,
        rate_limit_every=args.rate_limit_every,
    ) as jira:
        print(json.dumps({"tap_config": jira.tap_config(), "ca_bundle": jira.ca_path}), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
