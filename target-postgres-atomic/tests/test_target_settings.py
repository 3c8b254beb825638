"""The run's settings object: every default is the one the settings schema (and --about) shows."""

from __future__ import annotations

import dataclasses

import pytest
from target_postgres_atomic.settings import CONFIG_SCHEMA
from target_postgres_atomic.target_settings import TargetSettings


def test_an_empty_config_gives_every_default_of_the_schema() -> None:
    settings = TargetSettings.from_config({})
    for field in dataclasses.fields(TargetSettings):
        declared = CONFIG_SCHEMA["properties"][field.name].get("default")
        if declared is not None:
            assert getattr(settings, field.name) == declared, field.name
    assert settings.state_schema == "public"
    assert settings.upsert and not settings.overwrite


def test_configured_values_win_and_the_object_is_frozen() -> None:
    settings = TargetSettings.from_config(
        {"load_method": "append-only", "lock_timeout": 2, "default_target_schema": "raw"}
    )
    assert (settings.upsert, settings.lock_timeout, settings.state_schema) == (False, 2.0, "raw")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.lock_timeout = 1  # type: ignore[misc]
