"""Config validation and the console script of a singer-sdk plugin, the same for every plugin.

singer-sdk validates the config only as a warning at ``--discover``, names a missing config
file in a traceback, keeps settings it does not know without a word, and lists each config
error on its own log line. Here every mode refuses a bad config (discovery of our taps asks
the server, so it needs the settings too), unknown settings are refused naming the nearest
known one, secret values never appear in an error, and each refusal is the tool's one error
line (see ``safe_singer_common.cli``).
"""

from __future__ import annotations

import difflib
import itertools
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.plugin_base import PluginBase

from safe_singer_common.cli import fail, refusing
from safe_singer_common.redact import redacted

ENV_CONFIG = "ENV"  # `--config ENV`: the settings come from environment variables
NO_HINTS: Mapping[str, str] = {}


class ConfigRefused(SingerSDKError):
    """The config the plugin was given cannot be used: every error in one message.

    Not a ``ConfigValidationError`` on purpose: singer-sdk's command line catches those and
    logs each error on a line of its own (at ``--discover`` as well), where the error policy
    wants one line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("Config validation failed: " + "; ".join(errors))
        self.errors = errors


def unknown_settings(
    config: Mapping[str, Any],
    schema: Mapping[str, Any],
    plugin_name: str,
    instead: Mapping[str, str] = NO_HINTS,
) -> list[str]:
    """One error per configured key the plugin does not implement: a setting that would do
    nothing is refused rather than ignored (``instead`` names what to use for a peer's key)."""
    known = sorted(schema.get("properties", {}))
    errors = []
    for key in sorted(set(config) - set(known)):
        hint = instead.get(key)
        if hint is None:
            nearest = difflib.get_close_matches(key, known, n=1)
            guess = f"; did you mean '{nearest[0]}'?" if nearest else ""
            hint = f"not a setting of {plugin_name}{guess} (see --about)"
        errors.append(f"setting '{key}' would be ignored, so it is refused: {hint}")
    return errors


def refuse_bad_config(
    plugin: PluginBase,
    validate: Callable[..., list[str]],
    instead: Mapping[str, str] = NO_HINTS,
    refused: Sequence[str] = (),
) -> list[str]:
    """The body of every plugin's ``_validate_config`` override: an error of ``validate``
    (singer-sdk's validation), an unknown setting or one of the plugin's own ``refused``
    errors raises ``ConfigRefused`` in every mode; the errors listed never show a secret value.
    Returns the (empty) list of errors otherwise."""
    errors: list[str] = []
    try:
        validate(raise_errors=True)
    except ConfigValidationError as exc:
        errors = list(exc.errors)
    schema = plugin.config_jsonschema  # with singer-sdk's built-in settings, added by validate
    errors = redacted(errors, plugin.config, schema)
    errors += unknown_settings(plugin.config, schema, plugin.name, instead)
    errors += redacted(list(refused), plugin.config, schema)
    if errors:
        raise ConfigRefused(errors)
    return errors


def config_file_problem(argv: Sequence[str]) -> str | None:
    """What is wrong with a ``--config`` file named in ``argv``, before singer-sdk reads it
    (it would fail with a traceback)."""
    paths = [value for option, value in itertools.pairwise(argv) if option == "--config"]
    paths += [arg.removeprefix("--config=") for arg in argv if arg.startswith("--config=")]
    for path in paths:
        if path == ENV_CONFIG:
            continue
        try:
            with open(path, encoding="utf-8") as file:
                settings = json.load(file)
        except OSError as exc:
            return f"config file '{path}' cannot be read: {exc.strerror or exc}"
        except ValueError as exc:
            return f"config file '{path}' is not valid JSON: {exc}"
        if not isinstance(settings, dict):
            return (
                f"config file '{path}' holds a JSON {type(settings).__name__}: "
                "a JSON object of settings is expected"
            )
    return None


def run_plugin(plugin: type[PluginBase], refusals: tuple[type[BaseException], ...]) -> None:
    """The console script of a singer-sdk plugin: its command line under the error policy.

    Also covers what singer-sdk does while parsing the options (reading ``--config``,
    ``--discover``, ``--test``), before the plugin's ``invoke`` runs."""
    problem = config_file_problem(sys.argv[1:])
    if problem is not None:
        fail(plugin.name, problem)
    with refusing(plugin.name, (ConfigRefused, *refusals)):
        plugin.cli()
