"""Sinks for target-postgres-atomic (the staged, atomic merge comes with the target's issue)."""

from __future__ import annotations

from singer_sdk.sql import SQLSink


class PostgresSink(SQLSink):
    """One sink per stream."""
