"""A DynamoDB Streams endpoint for tests: real HTTP, real error codes, a virtual clock.

``start_stack()`` gives moto (the table service) plus our Streams endpoint mirroring it.
"""

from __future__ import annotations

from safe_singer_testing.emulators.dynamodb_streams.feed import MotoServer
from safe_singer_testing.emulators.dynamodb_streams.model import Faults
from safe_singer_testing.emulators.dynamodb_streams.server import StreamsEmulator
from safe_singer_testing.emulators.dynamodb_streams.stack import Stack, start_stack

__all__ = ["Faults", "MotoServer", "Stack", "StreamsEmulator", "start_stack"]
