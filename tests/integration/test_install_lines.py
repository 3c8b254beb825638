"""The docs' lines that install one package outside `make install`, run as written in fresh
venvs: each package depends on safe-singer-common, which is on no index, so a line that
installs a package alone from its folder fails for a user (pip: "No matching distribution
found for safe-singer-common")."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from safe_singer_testing import dist, readme
from safe_singer_testing.cli import BIN
from safe_singer_testing.postgres import REPO_ROOT

pytestmark = [pytest.mark.slow]


def user_env(tmp_path: Path, venv_bin: Path) -> dict[str, str]:
    """A user's shell with `venv_bin` active: no find-links, index or config of this machine
    (pip's config files off), `uv` on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    uv_only = tmp_path / "uv-bin"
    uv_only.mkdir()
    (uv_only / "uv").symlink_to(BIN / "uv")
    env.update(
        PATH=os.pathsep.join([str(venv_bin), str(uv_only), "/usr/local/bin", "/usr/bin", "/bin"]),
        VIRTUAL_ENV=str(venv_bin.parent),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def empty_venv(path: Path, python: str) -> Path:
    """A venv with pip in it and nothing else (what `python -m venv` gives); its bin folder."""
    dist.uv("venv", "--quiet", "--seed", "--python", dist.interpreter(python), str(path))
    return path / "bin"


def run(command: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


def answers_about(bin_dir: Path, name: str) -> None:
    done = subprocess.run(
        [str(bin_dir / name), "--about", "--format=json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["name"] == name


@pytest.mark.timeout(900)
def test_the_readme_installs_a_package_from_its_folder(tmp_path: Path) -> None:
    venv_bin = empty_venv(tmp_path / "venv", dist.minimum_python("tap-jira-safe"))
    run(readme.block("install-package"), user_env(tmp_path, venv_bin))
    answers_about(venv_bin, "tap-jira-safe")


@pytest.mark.timeout(900)
@pytest.mark.xdist_group(dist.XDIST_GROUP)
def test_the_readme_installs_a_package_from_the_wheels(tmp_path: Path) -> None:
    text = (REPO_ROOT / "README.md").read_text()
    found = re.search(r"from the wheels: `(pip install [^`]+)`", text)
    assert found, "README.md no longer shows the install from dist/"
    dist.build()
    venv_bin = empty_venv(tmp_path / "venv", dist.minimum_python("tap-jira-safe"))
    run(found.group(1), user_env(tmp_path, venv_bin))
    answers_about(venv_bin, "tap-jira-safe")


@pytest.mark.timeout(900)
def test_the_state_service_readme_installs_the_backend_into_a_meltano_venv(
    tmp_path: Path,
) -> None:
    meltano_bin = empty_venv(tmp_path / "meltano-venv", "3.11")
    env = user_env(tmp_path, Path("/nonexistent"))
    env["MELTANO_PYTHON"] = str(meltano_bin / "python")
    run(readme.block("meltano-venv-install", doc="state-service/README.md"), env)
    backends = subprocess.run(
        [str(meltano_bin / "python"), "-c",
         "from importlib.metadata import entry_points as e;"
         "print(' '.join(p.name for p in e(group='meltano.state_backends')))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert backends == ["statesvc"]


@pytest.mark.timeout(900)
def test_the_readme_git_pip_url_installs_from_a_clone(tmp_path: Path) -> None:
    """The README's `git+https://…#subdirectory=` `pip_url`, its placeholder replaced by this
    clone's `file://` URL (committed files: what a Git server would serve), installed the way
    Meltano installs a `pip_url` (its words as uv's requirements)."""
    text = (REPO_ROOT / "README.md").read_text()
    found = re.search(r"`pip_url: (git\+https://GIT_HOST/PATH\.git#[^`]+)`", text)
    assert found, "README.md no longer shows the git+https pip_url"
    pip_url = found.group(1).replace("https://GIT_HOST/PATH.git", REPO_ROOT.as_uri())
    assert "GIT_HOST" not in pip_url
    venv = tmp_path / "venv"
    dist.uv("venv", "--quiet", "--python", dist.interpreter("3.11"), str(venv))
    dist.uv("pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *pip_url.split())
    answers_about(venv / "bin", "tap-jira-safe")
