"""Config validation and the console script of a singer-sdk plugin, the same for every plugin.

singer-sdk validates the config only as a warning at ``--discover``, names a missing config
file in a traceback, keeps settings it does not know without a word, and lists each config
error on its own log line. Here every mode refuses a bad config (discovery of our taps asks
the server, so it needs the settings too), unknown settings are refused naming the nearest
known one, secret values never appear in an error, and each refusal is the tool's one error
line (see ``safe_singer_common.cli``).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from singer_sdk.exceptions import ConfigValidationError, SingerSDKError
from singer_sdk.plugin_base import PluginBase

from safe_singer_common import sdk_compat
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
    take_env_numbers(plugin)
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


BOOLEAN_WORDS = {"true", "1", "yes", "on", "false", "0", "no", "off", ""}


def _types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a setting's schema allows (``type`` or each ``anyOf`` option)."""
    found: set[str] = set()
    for option in schema.get("anyOf", [schema]):
        kind = option.get("type", []) if isinstance(option, Mapping) else option
        found |= {kind} if isinstance(kind, str) else set(kind)
    return found


def env_value_problem(schema: Mapping[str, Any], value: str) -> str | None:
    """What a setting of this schema expects, when an environment variable's text cannot
    be read as one (singer-sdk would raise a bare ``ValueError`` for an integer, an array
    or an object; it reads any word but true/1/yes/on as false, and a number as text)."""
    types = _types(schema)
    items = schema.get("items")
    if "integer" in types:
        return None if _parses(int, value) else "a whole number, such as 8"
    if "boolean" in types:
        return None if value.strip().lower() in BOOLEAN_WORDS else "true or false"
    if "number" in types:
        return None if _parses(float, value) else "a number, such as 2.5"
    if "array" in types:
        strings = isinstance(items, Mapping) and "string" in _types(items)
        if strings and not value.lstrip().startswith("["):
            return None  # singer-sdk's `a,b,c` form
        return None if isinstance(_json(value), list) else 'a JSON array, such as ["A", "B"]'
    if "object" in types:
        return None if isinstance(_json(value), dict) else 'a JSON object, such as {"key": 1}'
    return None


def _parses(kind: Callable[[str], object], value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _json(value: str) -> Any:
    """The JSON in ``value``, or ``None`` when it is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return None


def env_variable(plugin_name: str, setting: str) -> str:
    """The environment variable singer-sdk reads ``setting`` from with ``--config ENV``."""
    return f"{plugin_name}_{setting}".upper().replace("-", "_")


def take_env_numbers(plugin: PluginBase, environ: Mapping[str, str] = os.environ) -> None:
    """Give each number setting read from its environment variable the number it spells.

    singer-sdk's ``--config ENV`` reads integers, booleans, arrays and objects as their
    types but passes a number (``"type": "number"``) on as text, which its own validation then
    refuses. Only a value equal to its variable's text is taken (a config file's ``"5"`` for a
    number stays an error); ``env_config_problem`` has checked that the text is a number."""
    config = sdk_compat.config_dict(plugin)
    for name, setting in plugin.config_jsonschema.get("properties", {}).items():
        value = config.get(name)
        types = _types(setting)
        if (
            isinstance(value, str)
            and "number" in types
            and "string" not in types
            and environ.get(env_variable(plugin.name, name)) == value
            and _parses(float, value)
        ):
            config[name] = int(value) if _parses(int, value) else float(value)


def env_config_problem(
    plugin: type[PluginBase], argv: Sequence[str], environ: Mapping[str, str] = os.environ
) -> str | None:
    """With ``--config ENV``, the first ``<PLUGIN>_<SETTING>`` environment variable whose
    text the setting cannot take, named with what it expects (a secret's value never shown)."""
    pairs = itertools.pairwise(argv)
    if not any(pair == ("--config", ENV_CONFIG) for pair in pairs) and "--config=ENV" not in argv:
        return None
    schema = copy.deepcopy(plugin.config_jsonschema)
    plugin.append_builtin_config(schema)
    for name, setting in schema.get("properties", {}).items():
        variable = env_variable(plugin.name, name)
        if variable not in environ:
            continue
        expected = env_value_problem(setting, environ[variable])
        if expected is not None:
            shown = "its value" if setting.get("secret") else repr(environ[variable][:60])
            return (
                f"environment variable {variable}: {shown} is not a value for setting "
                f"'{name}'; give {expected}"
            )
    return None


def run_plugin(plugin: type[PluginBase], refusals: tuple[type[BaseException], ...]) -> None:
    """The console script of a singer-sdk plugin: its command line under the error policy.

    Also covers what singer-sdk does while parsing the options (reading ``--config`` files
    and ``--config ENV`` variables, ``--discover``, ``--test``), before the plugin's
    ``invoke`` runs."""
    problem = config_file_problem(sys.argv[1:]) or env_config_problem(plugin, sys.argv[1:])
    if problem is not None:
        fail(plugin.name, problem)
    with refusing(plugin.name, (ConfigRefused, *refusals)):
        plugin.cli()
