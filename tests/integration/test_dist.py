"""`make dist`: every package installs alone from its wheel, on the lowest Python it declares,
with only its declared dependencies (extras' included where declared), imports, and its console
scripts answer."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from safe_singer_testing import dist

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(dist.XDIST_GROUP)]

SINGER_PLUGINS = {"tap-jira-safe", "tap-dynamodb-streams", "target-postgres-atomic"}
# Declared but loaded by name rather than imported: state-service's SQLAlchemy URLs
# (`postgresql+psycopg://`) load psycopg as the driver.
LOADED_BY_NAME = {("state-service", "psycopg")}
# Imported but provided by the program that loads the module: state-service's Meltano state
# backend runs inside Meltano (installed into Meltano's environment).
PROVIDED_BY_HOST = {("state-service", "meltano")}


def wheel_metadata(path: Path) -> tuple[list[Requirement], dict[str, str], list[str]]:
    """Declared requirements, console scripts, and the source of every module in a wheel."""
    with zipfile.ZipFile(path) as whl:
        names = whl.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(whl.read(meta_name).decode())
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts: dict[str, str] = {}
        section = ""
        lines = whl.read(entry_points[0]).decode().splitlines() if entry_points else []
        for line in lines:
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line and section == "console_scripts":
                key, value = line.split("=", 1)
                scripts[key.strip()] = value.strip()
        sources = [whl.read(n).decode() for n in names if n.endswith(".py")]
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    return requirements, scripts, sources


def imported_top_levels(sources: list[str]) -> set[str]:
    found: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", dist.packages())
def test_declared_dependencies_are_the_imported_ones(folder: str) -> None:
    """No declared dependency the package never imports, no import it does not declare."""
    requirements, _, sources = wheel_metadata(dist.wheel(folder))
    own = dist.project(folder)["name"].replace("-", "_")
    declared = {r.name.lower().replace("-", "_") for r in requirements}
    always = {r.name.lower().replace("-", "_") for r in requirements if r.marker is None}
    imported = imported_top_levels(sources) - set(sys.stdlib_module_names) - {own, "__future__"}
    unused = {d for d in always - imported if (folder, d) not in LOADED_BY_NAME}
    undeclared = {i for i in imported - declared if (folder, i) not in PROVIDED_BY_HOST}
    assert not unused, f"{folder} declares but never imports: {sorted(unused)}"
    assert not undeclared, f"{folder} imports but does not declare: {sorted(undeclared)}"


@pytest.mark.parametrize("folder", dist.packages())
def test_wheel_installs_alone_and_answers(folder: str, tmp_path: Path) -> None:
    """A clean venv on the declared minimum Python, the wheel, its dependencies: `pip check`
    clean, and each console script runs."""
    whl = dist.wheel(folder)
    python = dist.minimum_python(folder)
    bin_dir = dist.fresh_venv(tmp_path / "venv", python, str(whl))
    dist.uv("pip", "check", "--python", str(bin_dir / "python"))
    version = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == python
    _, scripts, _ = wheel_metadata(whl)
    module = dist.project(folder)["name"].replace("-", "_")
    imported = subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], check=False)
    assert imported.returncode == 0, f"{module} does not import from its wheel"
    console_scripts_answer(bin_dir, scripts)


@pytest.mark.parametrize("folder", dist.packages())
def test_sdist_installs_and_answers(folder: str, tmp_path: Path) -> None:
    """The sdist in dist/ builds and installs (our other packages found in dist/ only) on the
    declared minimum Python, and gives the console scripts the wheel declares, answering."""
    source = dist.sdist(folder)
    bin_dir = dist.fresh_venv(tmp_path / "venv", dist.minimum_python(folder), str(source))
    dist.uv("pip", "check", "--python", str(bin_dir / "python"))
    name = dist.project(folder)["name"]
    read_origin = f"import importlib.metadata as m; print(m.distribution({name!r}).read_text("
    origin = subprocess.run(
        [str(bin_dir / "python"), "-c", read_origin + "'direct_url.json'))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert json.loads(origin)["url"] == source.as_uri(), origin
    module = name.replace("-", "_")
    imported = subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], check=False)
    assert imported.returncode == 0, f"{module} does not import from its sdist"
    _, scripts, _ = wheel_metadata(dist.wheel(folder))
    console_scripts_answer(bin_dir, scripts)


def console_scripts_answer(bin_dir: Path, scripts: dict[str, str]) -> None:
    """Each console script runs: a plugin's `--about --format=json`, otherwise `--help`."""
    for name in scripts:
        command = [str(bin_dir / name)]
        if name in SINGER_PLUGINS:
            command += ["--about", "--format=json"]
        elif name == "refresh-seal":  # a wrapper: it passes `--about` to the program it wraps
            command += [str(bin_dir / "target-postgres-atomic"), "--about", "--format=json"]
        else:
            command += ["--help"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stderr[-3000:]}"
        if "--about" in command:
            assert json.loads(done.stdout)["name"] in SINGER_PLUGINS
