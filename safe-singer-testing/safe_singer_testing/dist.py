"""The packages as a user gets them: `make dist`'s wheels, each installed into a fresh venv."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path

from safe_singer_testing.cli import BIN
from safe_singer_testing.postgres import REPO_ROOT

DIST = REPO_ROOT / "dist"
# Tests that build or read dist/ share one pytest-xdist worker: `make dist` empties it first.
XDIST_GROUP = "dist"


def packages() -> list[str]:
    """The package folders `make dist` builds (the Makefile's PACKAGES)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^PACKAGES\s*:?=\s*(.+)$", makefile, re.M)
    assert match, "no PACKAGES in the Makefile"
    return match.group(1).split()


def project_file(folder: str) -> dict:
    data: dict = tomllib.loads((REPO_ROOT / folder / "pyproject.toml").read_text())
    return data


def project(folder: str) -> dict:
    data: dict = project_file(folder)["project"]
    return data


def minimum_python(folder: str) -> str:
    """The lowest Python a package declares (`requires-python = ">=3.X"`)."""
    declared = project(folder)["requires-python"]
    match = re.fullmatch(r">=\s*(3\.\d+)", declared.strip())
    assert match, f"{folder}: requires-python {declared!r} is not of the form >=3.X"
    return match.group(1)


@functools.cache
def build() -> Path:
    """Run `make dist` once per test session, whichever pytest-xdist worker asks first; the
    wheels and sdists in dist/. The `xdist_group` mark does not keep these tests on one
    worker (pytest 9 with pytest-xdist 3.8 ignores it), and a second `make dist` empties
    dist/ under another worker's install: so a lock outside the tree, and a stamp in dist/
    naming the session (`PYTEST_XDIST_TESTRUNUID`; without xdist, once per process)."""
    session = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    stamp = DIST / f".built-{session}" if session else None
    key = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    lock = Path(tempfile.gettempdir()) / f"safe-singer-dist-{key}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
        if stamp is None or not stamp.exists():
            done = subprocess.run(["make", "dist"], cwd=REPO_ROOT, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            if stamp is not None:
                stamp.touch()
    return DIST


def wheel(folder: str) -> Path:
    name = project(folder)["name"].replace("-", "_")
    found = sorted(build().glob(f"{name}-*.whl"))
    assert len(found) == 1, f"expected one wheel of {folder} in dist/, found {found}"
    return found[0]


def sdist(folder: str) -> Path:
    """The package's source distribution in dist/ (`NAME-VERSION.tar.gz`)."""
    meta = project(folder)
    path = build() / f"{meta['name'].replace('-', '_')}-{meta['version']}.tar.gz"
    assert path.is_file(), f"no sdist of {folder} in dist/: {sorted(os.listdir(DIST))}"
    return path


def uv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`uv` of the dev venv; its cache makes a fresh venv's install take seconds."""
    done = subprocess.run(
        [str(BIN / "uv"), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, f"uv {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


def interpreter(version: str) -> str:
    """A Python `version` interpreter on this machine: one uv finds, else a pyenv install."""
    found = subprocess.run(
        [str(BIN / "uv"), "python", "find", "--python-preference", "only-system", version],
        capture_output=True,
        text=True,
    )
    if found.returncode == 0:
        return found.stdout.strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{version}.*/bin/python{version}"))
    assert candidates, f"no Python {version} here (uv, pyenv): install it to test the wheels on it"
    return str(candidates[-1])


def fresh_venv(path: Path, python: str, *requirements: str) -> Path:
    """A new venv at `path` on that Python with only `requirements` (and their declared
    dependencies) installed, our other packages found in dist/ only. Its bin folder."""
    uv("venv", "--quiet", "--python", interpreter(python), str(path))
    uv(
        "pip", "install", "--quiet", "--python", str(path / "bin" / "python"),
        "--find-links", str(build()), *requirements,
    )  # fmt: skip
    return path / "bin"
