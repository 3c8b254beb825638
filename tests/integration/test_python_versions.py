"""Each package's `requires-python` is true: nothing in it needs a newer Python (vermin, run
by `make lint` too); test_dist.py also installs and runs each wheel on that Python."""

from __future__ import annotations

import pytest

from safe_singer_testing import dist, python_versions


@pytest.mark.parametrize("folder", dist.packages())
def test_package_needs_no_newer_python_than_declared(folder: str) -> None:
    assert python_versions.violations(folder) == ""
