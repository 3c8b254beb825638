"""Stream maps and flattening as singer-sdk targets apply them (`singer_sdk.mapper`).

Records of a stream no map changes keep the fast path (raw JSON bytes straight into COPY). A
mapped stream's records are decoded (non-integers as Decimal, so no digit is lost), passed
through each of the stream's maps, and re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import msgspec
from singer_sdk.exceptions import MappingError
from singer_sdk.mapper import PluginMapper, RemoveRecordTransform, SameRecordTransform, StreamMap

from target_postgres_atomic.errors import SEQ_SHIFT, BadRecordError

_decode = msgspec.json.Decoder(float_hook=Decimal).decode
_encode = msgspec.json.Encoder(decimal_format="number").encode


def _is_identity(stream: str, maps: list[StreamMap]) -> bool:
    only = maps[0] if len(maps) == 1 else None
    return (
        isinstance(only, SameRecordTransform)
        and only.stream_alias == stream
        and not only.flattening_enabled
    )


class StreamMaps:
    """Which streams go through maps, and the messages their maps turn them into."""

    def __init__(self, mapper: PluginMapper, config: Mapping[str, Any]) -> None:
        self._mapper = mapper
        self._active = bool(config.get("stream_maps")) or bool(config.get("flattening_enabled"))
        self._routes: dict[str, list[StreamMap]] = {}

    def maps_stream(self, stream: str) -> bool:
        return stream in self._routes

    def route_schema(self, message: dict) -> list[dict] | None:
        """The SCHEMA messages the stream's maps make of this one; None when none applies."""
        if not self._active:
            return None
        stream = message["stream"]
        self._mapper.register_raw_stream_schema(
            stream, message["schema"], message.get("key_properties")
        )
        maps = self._mapper.stream_maps[stream]
        if _is_identity(stream, maps):
            self._routes.pop(stream, None)
            return None
        self._routes[stream] = maps
        routed = []
        for stream_map in maps:
            if isinstance(stream_map, RemoveRecordTransform):
                continue
            properties = stream_map.transformed_schema.get("properties", {})
            bookmarks = [b for b in message.get("bookmark_properties") or [] if b in properties]
            routed.append(
                {
                    **message,
                    "stream": stream_map.stream_alias,
                    "schema": stream_map.transformed_schema,
                    "key_properties": list(stream_map.transformed_key_properties or []),
                    "bookmark_properties": bookmarks or None,
                }
            )
        return routed

    def aliases(self, stream: str) -> list[str]:
        return [
            m.stream_alias for m in self._routes[stream] if not isinstance(m, RemoveRecordTransform)
        ]

    def route_record(self, message: dict) -> Iterator[dict]:
        """The RECORD messages (raw JSON again) the stream's maps make of this one."""
        stream, seq = message["stream"], message.get("seq", message["line"] << SEQ_SHIFT)
        try:
            record = _decode(message["record"])
        except msgspec.DecodeError as exc:
            raise BadRecordError(stream, seq, None, f"not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise BadRecordError(stream, seq, None, "the record is not a JSON object")
        for stream_map in self._routes[stream]:
            try:
                transformed = stream_map.transform(dict(record))
            except MappingError as exc:
                raise BadRecordError(stream, seq, None, f"stream map failed: {exc}") from None
            if transformed is not None:
                yield {**message, "stream": stream_map.stream_alias, "record": _encode(transformed)}
