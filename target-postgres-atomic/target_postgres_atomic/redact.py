"""Secret settings stay out of messages: singer-sdk's config validation quotes bad values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from singer_sdk.exceptions import ConfigValidationError

HIDDEN = "(secret value hidden)"


def secret_values(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way a message may spell the value of a setting marked secret."""
    found: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        value = config.get(name)
        if not isinstance(prop, dict) or value in (None, ""):
            continue
        if prop.get("secret"):
            found += [repr(value), json.dumps(value), str(value)]
        if isinstance(value, dict):  # an object setting's own secrets (ssh_tunnel's key)
            found += secret_values(value, prop)
    return sorted(set(found), key=len, reverse=True)


def redacted(errors: list[str], config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The validation errors with secret values replaced (longest spelling first)."""
    secrets = secret_values(config, schema)
    result = []
    for error in errors:
        for secret in secrets:
            error = error.replace(secret, HIDDEN)
        result.append(error)
    return result


def redacted_error(exc: ConfigValidationError, config: Mapping[str, Any]) -> ConfigValidationError:
    """The same ConfigValidationError with its listed errors redacted."""
    schema = exc.schema or {}
    return ConfigValidationError(
        str(exc.args[0]), errors=redacted(exc.errors, config, schema), schema=exc.schema
    )
