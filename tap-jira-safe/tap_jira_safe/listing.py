"""Full-table listings of Jira reference data, and the proof that a listing was complete.

A full-table stream opens its table version (ACTIVATE_VERSION) when its first page answered,
and sends the closing ACTIVATE_VERSION only after every page of it, and of every full-table
stream below it (versions under projects, sprints under boards), was read. The target
replaces a table only at that closing message, so a listing that failed part-way, a 403 or
a malformed answer never deletes a row downstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import requests
from singer_sdk import typing as th
from singer_sdk.helpers.types import Context
from singer_sdk.pagination import BaseAPIPaginator, OffsetPaginator, SinglePagePaginator
from typing_extensions import override

from tap_jira_safe import sdk_compat
from tap_jira_safe.client import (
    JiraStream,
    StartAtPaginator,
    advice_for,
    decoded,
    endpoint_of,
    jira_answer,
)
from tap_jira_safe.errors import JiraApiError, JiraBadAnswer
from tap_jira_safe.timeutil import jira_to_iso

_TYPES: dict[str, th.JSONTypeHelper[Any]] = {
    "string": th.StringType(),
    "integer": th.IntegerType(),
    "number": th.NumberType(),
    "boolean": th.BooleanType(),
    "date-time": th.DateTimeType(),
    "object": th.ObjectType(additional_properties=True),
    "array": th.ArrayType(th.CustomType({})),
    "text": th.CustomType({"type": ["object", "string", "null"]}),  # ADF on v3, text on v2
}


def schema(keys: tuple[str, ...], **properties: str) -> dict[str, Any]:
    """A record schema: Jira's documented response fields by short type name; ``keys``
    are required (the primary key)."""
    return th.PropertiesList(
        *(
            th.Property(name, _TYPES[kind], required=name in keys)
            for name, kind in properties.items()
        )
    ).to_dict()


class JiraForbidden(JiraApiError):
    """403: the API user lacks a permission this endpoint needs."""


class OffsetLimitPaginator(OffsetPaginator):
    """``offset`` / ``limit`` / ``total`` paging (``/auditing/record``)."""

    def __init__(self, page_size: int, items_key: str) -> None:
        super().__init__(start_value=0, page_size=page_size)
        self.items_key = items_key

    @override
    def has_more(self, response: requests.Response) -> bool:
        body = decoded(response)
        items = body.get(self.items_key) or []
        return bool(items) and int(body["offset"]) + len(items) < int(body["total"])

    @override
    def get_next(self, response: requests.Response) -> int | None:
        return int(self._value) + len(decoded(response).get(self.items_key) or [])


_END = object()


class ListingStream(JiraStream):
    """A Jira list endpoint read whole each run (or from a bookmark, with a replication key).

    Paths below ``/rest/api/{2,3}`` are relative (``/dashboard``); Agile ones are absolute.
    """

    cloud_path: ClassVar[str | None] = None  # None: Jira Cloud has no such endpoint
    dc_path: ClassVar[str | None] = None  # None: Jira Server / Data Center has none
    items_key: ClassVar[str | None] = None  # the list's key in the answer; None: a bare list
    paged: ClassVar[bool] = False  # startAt / maxResults paging
    single: ClassVar[bool] = False  # the answer is one object: one record
    permission: ClassVar[str | None] = None  # the Jira permission a 403 means is missing
    times: ClassVar[tuple[str, ...]] = ()  # date-time fields, rendered in the user's zone
    parent_keys: ClassVar[tuple[str, ...]] = ()  # context keys copied into each record
    extra_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened = False
        self._skipped = False
        self._told_not_offered = False

    @property
    def offered(self) -> bool:
        return (self.cloud_path if self.cloud else self.dc_path) is not None

    @property
    def path(self) -> str:  # type: ignore[override]
        relative = self.cloud_path if self.cloud else self.dc_path
        assert relative is not None, "path of a stream this deployment does not offer"
        return relative if relative.startswith("/rest/") else f"{self.api}{relative}"

    @override
    def get_new_paginator(self) -> BaseAPIPaginator[Any]:
        if self.paged:
            return StartAtPaginator(self.page_size, self.items_key)
        return SinglePagePaginator()

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = dict(self.extra_params)
        if self.paged:
            params.update(startAt=next_page_token or 0, maxResults=self.page_size)
        return params

    @override
    def validate_response(self, response: requests.Response) -> None:
        if response.status_code == 403:
            raise JiraForbidden(jira_answer(response), advice_for(403))
        super().validate_response(response)

    @override
    def parse_response(self, response: requests.Response) -> Iterator[dict[str, Any]]:
        yield from self.items(decoded(response), endpoint_of(response.request))

    def items(self, body: Any, endpoint: str) -> Iterable[dict[str, Any]]:
        """The records of one answer; anything but the documented shape stops the run: a
        ``{}`` read as an empty list would replace the table with nothing."""
        if self.single and isinstance(body, dict) and body:
            return [body]
        found = body
        if self.items_key:
            found = body.get(self.items_key) if isinstance(body, dict) else None
        if not self.single and isinstance(found, list):
            return found
        documented = "a JSON list"
        if self.single or self.items_key:
            documented = (
                f"an object with a `{self.items_key}` list" if self.items_key else "an object"
            )
        raise JiraBadAnswer(
            f"{self.name}: {endpoint} answered {json.dumps(body, default=str)[:60]}, not "
            f"{documented}: the listing may be incomplete, so nothing was replaced or "
            "deleted; run again, and report it to your Jira admin if it repeats."
        )

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        for name in self.times:
            row[name] = jira_to_iso(row.get(name))
        for key in self.parent_keys:
            row[key] = (context or {})[key]
        return row

    def say_not_offered(self) -> None:
        """One INFO line for this stream and each below it (they are never synced)."""
        if self._told_not_offered or not self.selected:
            return
        self._told_not_offered = True
        deployment = "Jira Cloud" if self.cloud else "Jira Server / Data Center"
        self.logger.info("%s: %s has no such endpoint; skipped", self.name, deployment)
        for child in self.child_streams:
            if isinstance(child, ListingStream):
                child.say_not_offered()

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        if not self.offered:
            self.say_not_offered()
            return
        if self._skipped:
            return
        rows = iter(super().get_records(context))
        try:
            first: Any = next(rows, _END)
        except JiraForbidden as exc:
            if self._opened:  # part of the table went out: skipping would publish a part
                raise
            self._skipped = True
            self.logger.warning(
                "%s: skipped, the API user lacks the Jira permission %r (%s); its table is "
                "left as it was. Grant it to sync this stream, or deselect the stream.",
                self.name,
                self.permission or "needed by this endpoint",
                exc,
            )
            return
        self._open_version()
        if first is not _END:
            yield first
            yield from rows
        parent = self.parent_stream_type
        if parent is None or not issubclass(parent, ListingStream):
            self.close_versions()  # a child's closes when its parent's listing ends

    def _full_table(self) -> bool:
        return self.replication_method == "FULL_TABLE" and self.selected

    def _open_version(self) -> None:
        """The opening ACTIVATE_VERSION, sent here (not by singer-sdk's ``Stream.sync``,
        which would send it before the first page answered, for a 403 too)."""
        if self._opened or not self._full_table():
            return
        self._opened = True
        sdk_compat.write_activate_version(self, sdk_compat.open_table_version(self))

    def close_versions(self) -> None:
        """The closing ACTIVATE_VERSION of this stream and of each full-table stream below
        it that read every page; one whose parent listed nothing is complete and empty."""
        if self._skipped or not self.offered:
            return
        self._open_version()
        if self._opened:
            sdk_compat.write_activate_version(self, sdk_compat.table_version(self))
        for child in self.child_streams:
            if isinstance(child, ListingStream):
                child.close_versions()
