"""Each package's `requires-python` is true: nothing in it needs a newer Python (vermin, run
by `make lint` too); test_dist.py also installs and runs each wheel on that Python. And the
README's Python claims are true: the Python it asks for `make` runs everything `make install`
installs, and the packages run on the Python it names for them."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from packaging.specifiers import SpecifierSet

from safe_singer_testing import dist, python_versions
from safe_singer_testing.postgres import REPO_ROOT


def readme_claim(pattern: str) -> str:
    found = re.search(pattern, (REPO_ROOT / "README.md").read_text())
    assert found, f"README.md no longer says {pattern!r}"
    return found.group(1)


@pytest.mark.parametrize("folder", dist.packages())
def test_package_needs_no_newer_python_than_declared(folder: str) -> None:
    assert python_versions.violations(folder) == ""


def test_the_readme_python_for_make_runs_everything_make_install_installs() -> None:
    """Every distribution in the dev venv (our packages, the tests' own, the tools, and what
    they pulled in) allows the Python the quick start asks for."""
    minimum = readme_claim(r"a fresh machine needs: Python (3\.\d+)\+ as `python3`")
    refusing = sorted(
        f"{d.metadata['Name']} (requires-python {d.metadata['Requires-Python']})"
        for d in importlib.metadata.distributions()
        if d.metadata.get("Requires-Python")
        and not SpecifierSet(d.metadata["Requires-Python"]).contains(f"{minimum}.0", True)
    )
    assert not refusing, f"README says Python {minimum}+ for make, but {refusing} need more"


def test_the_readme_python_for_the_packages_is_each_declared_minimum() -> None:
    claimed = readme_claim(r"The packages `make dist` builds\s+run on Python (3\.\d+) and up")
    declared = {folder: dist.minimum_python(folder) for folder in dist.packages()}
    assert set(declared.values()) == {claimed}, declared
