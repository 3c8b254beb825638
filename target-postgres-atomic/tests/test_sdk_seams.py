"""Every private singer-sdk member the target overrides or calls still exists in the installed
singer-sdk with the parameters we rely on: a release that moves one fails here, not in a run."""

from __future__ import annotations

import inspect

import pytest
from target_postgres_atomic import sdk_compat
from target_postgres_atomic.reader import LineReader
from target_postgres_atomic.target import TargetPostgresAtomic

SEAMS = {**sdk_compat.OVERRIDES, **sdk_compat.CALLS}


@pytest.mark.parametrize(
    ("owner", "name"), list(SEAMS), ids=[f"{o.__name__}.{n}" for o, n in SEAMS]
)
def test_each_seam_exists_with_the_parameters_we_rely_on(owner: type, name: str) -> None:
    member = getattr(owner, name, None)
    assert callable(member), f"singer-sdk's {owner.__name__} has no method {name} any more"
    parameters = tuple(inspect.signature(member).parameters)
    assert parameters == SEAMS[owner, name], f"{owner.__name__}.{name} now takes {parameters}"


@pytest.mark.parametrize(
    ("owner", "name"),
    list(sdk_compat.OVERRIDES),
    ids=[f"{o.__name__}.{n}" for o, n in sdk_compat.OVERRIDES],
)
def test_each_override_takes_the_parameters_of_the_method_it_overrides(
    owner: type, name: str
) -> None:
    ours = TargetPostgresAtomic if issubclass(TargetPostgresAtomic, owner) else LineReader
    assert name in vars(ours), f"{ours.__name__} no longer overrides {name}: drop the seam"
    parameters = tuple(inspect.signature(getattr(ours, name)).parameters)
    assert parameters == sdk_compat.OVERRIDES[owner, name]


def test_singer_sdk_still_takes_our_reader_class() -> None:
    assert issubclass(TargetPostgresAtomic.message_reader_class, sdk_compat.GenericSingerReader)
    assert "message_reader_class" in vars(TargetPostgresAtomic)
