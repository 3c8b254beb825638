"""Issue 21 section 2: every method or property of ours that overrides singer-sdk's is marked
``@override``, so a reader (and a type checker) sees which SDK seam each one replaces."""

from __future__ import annotations

import inspect

import singer_sdk

from tap_jira_safe import client, issues, reference, sdk_compat, streams, tap, window


def sdk_defined(cls: type, name: str) -> bool:
    return any(
        name in vars(base) and base.__module__.startswith(singer_sdk.__name__)
        for base in cls.__mro__[1:]
    )


def unmarked() -> list[str]:
    found = []
    for module in (client, issues, reference, sdk_compat, streams, tap, window):
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, member in vars(cls).items():
                if name.startswith("__") or not sdk_defined(cls, name):
                    continue
                function = member.fget if isinstance(member, property) else member
                if inspect.isfunction(function) and not getattr(function, "__override__", False):
                    found.append(f"{cls.__name__}.{name}")
    return found


def test_every_sdk_override_is_marked() -> None:
    assert unmarked() == []
