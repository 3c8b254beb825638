"""Issue fields typed from Jira's ``/field`` list; times converted to UTC ISO 8601."""

from __future__ import annotations

from typing import Any

from tap_jira_safe.timeutil import jira_to_iso

DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SIMPLE: dict[str, dict[str, Any]] = {
    "string": {"type": ["string", "null"]},
    "number": {"type": ["number", "null"]},
    "datetime": DATE_TIME,
    "date": {"type": ["string", "null"], "format": "date"},
    "any": {},
}
_ITEMS: dict[str, dict[str, Any]] = {"string": {"type": ["string", "null"]}}


def field_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    kind = (schema or {}).get("type", "any")
    if kind in _SIMPLE:
        return dict(_SIMPLE[kind])
    if kind == "array":
        items = _ITEMS.get(str((schema or {}).get("items")), {"type": ["object", "string", "null"]})
        return {"type": ["array", "null"], "items": items}
    return {"type": ["object", "null"]}


def fields_schema(field_list: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of an issue's ``fields`` object, one property per Jira field."""
    props = {f["id"]: field_schema(f.get("schema")) for f in field_list}
    props.pop("comment", None)  # complete comments come from the paged endpoint instead
    props.pop("worklog", None)
    return {"type": ["object", "null"], "properties": props, "additionalProperties": True}


def normalise_fields(fields: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Jira renders times like ``...51.887-0800``: emit date-time fields as UTC ISO 8601."""
    props = schema.get("properties", {})
    out = dict(fields)
    for name, value in fields.items():
        if isinstance(value, str) and props.get(name, {}).get("format") == "date-time":
            out[name] = jira_to_iso(value)
    return out
