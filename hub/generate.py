"""Write the Meltano Hub definitions of our plugins from their `--about --format=json`.

One source of truth: each plugin's settings schema. This script writes
`hub/extractors/<name>.yml` and `hub/loaders/<name>.yml` in the Hub's plugin-definition format,
and the same definitions into the repository's `meltano.yml` (there with `pip_url: -e ./<folder>`
so `meltano install` builds the working tree). `--check` writes nothing and exits 1 naming every
file that differs from what it would write (`make hub` writes, the tests check).

A Hub definition installs its plugin by name (`pip_url: tap-jira-safe`): from an index once the
packages are published, from the wheels of `make dist` until then (`UV_FIND_LINKS` /
`PIP_FIND_LINKS` at `dist/`, as the top README shows). Its `repo` and `docs` links come from the
plugin's `[project.urls]` (`Repository`, `Documentation`) and are left out while it declares
none: no link is written that does not lead anywhere.

Usage: `.venv/bin/python hub/generate.py [--check]`
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomllib
import yaml
from packaging.requirements import Requirement
from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB = REPO_ROOT / "hub"
VARIANT = "safe-singer"

# plugin name -> (plugin type, folder in this repository, human label)
PLUGINS: dict[str, tuple[str, str, str]] = {
    "tap-jira-safe": ("extractors", "tap-jira-safe", "Jira (safe)"),
    "tap-dynamodb-streams": ("extractors", "tap-dynamodb-streams", "DynamoDB Streams"),
    "target-postgres-atomic": ("loaders", "target-postgres-atomic", "PostgreSQL (atomic)"),
}
# Settings a plugin needs one set of, beside its required ones: the ways it authenticates
# (tap-jira-safe sends a bearer `access_token` when set, else basic auth with `email` and
# `api_token`). JSON schema's `required` cannot say "one of these sets", Meltano's
# `settings_group_validation` can: one group per alternative.
ALTERNATIVES: dict[str, list[list[str]]] = {
    "tap-jira-safe": [["email", "api_token"], ["access_token"]],
}
# Hub catalogue fields that Meltano would take for plugin extras in a project's meltano.yml.
HUB_ONLY = ("maintenance_status", "keywords")
# Fields a definition may write (or leave out): a project's own value for one is not kept.
OPTIONAL_FIELDS = ("docs", "repo", "settings_group_validation")
# Words a label spells in capitals (Hub labels read "API Token", not "Api Token").
ACRONYMS = {"api", "aws", "id", "jql", "ssl", "ttl", "url", "sqlalchemy"}
# JSON-schema type -> Meltano setting kind, first match wins.
KINDS = (
    ("boolean", "boolean"),
    ("integer", "integer"),
    ("number", "decimal"),
    ("array", "array"),
    ("object", "object"),
)


def bin_dir() -> Path:
    """The console scripts next to the running interpreter (the repo's `.venv/bin`)."""
    return Path(sys.executable).parent


def about(name: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(bin_dir() / name), "--about", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def setting_kind(prop: dict[str, Any]) -> str:
    """The Meltano setting kind of a JSON-schema property."""
    if "enum" in prop:
        return "options"
    types = prop.get("type") or []
    types = [types] if isinstance(types, str) else types
    for json_type, kind in KINDS:
        if json_type in types:
            return kind
    return "date_iso8601" if prop.get("format") == "date-time" else "string"


def label(name: str) -> str:
    return " ".join(w.upper() if w in ACRONYMS else w.capitalize() for w in name.split("_"))


def option_label(value: str) -> str:
    return value.replace("-", " ").replace("_", " ").capitalize()


def setting(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    kind = setting_kind(prop)
    entry: dict[str, Any] = {
        "name": name,
        "label": prop.get("title") or label(name),
        "kind": kind,
        "description": (prop.get("description") or "").strip(),
    }
    if prop.get("default") is not None:
        entry["value"] = prop["default"]
    if kind == "options":
        entry["options"] = [{"label": option_label(v), "value": v} for v in prop["enum"]]
    if prop.get("secret"):
        entry["sensitive"] = True
    return entry


def definition(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Hub definition of one plugin, from its `--about --format=json`."""
    _, folder, plugin_label = PLUGINS[name]
    schema = data["settings"]
    required = list(schema.get("required") or [])
    result: dict[str, Any] = {
        "name": name,
        "variant": VARIANT,
        "label": plugin_label,
        "description": data["description"],
        "namespace": name.replace("-", "_"),
        "pip_url": name,
        "executable": name,
        **published_links(folder),
        "maintenance_status": "active",
        "keywords": ["meltano_sdk"],
        "capabilities": sorted(data["capabilities"]),
        "settings": [setting(n, p) for n, p in schema["properties"].items()],
    }
    groups = [[*required, *alternative] for alternative in ALTERNATIVES.get(name, [[]])]
    if any(groups):
        result["settings_group_validation"] = groups
    return result


def published_links(folder: str) -> dict[str, str]:
    """The Hub's `docs` and `repo` from the package's `[project.urls]`, where it declares them."""
    urls = tomllib.loads((REPO_ROOT / folder / "pyproject.toml").read_text())["project"].get(
        "urls", {}
    )
    fields = (("docs", "Documentation"), ("repo", "Repository"))
    return {field: urls[label] for field, label in fields if label in urls}


def hub_path(name: str) -> Path:
    return HUB / PLUGINS[name][0] / f"{name}.yml"


def hub_text(plugin: dict[str, Any]) -> str:
    head = (
        f"# Generated by hub/generate.py from `{plugin['name']} --about --format=json`:"
        " edit the plugin, then `make hub`.\n"
    )
    return head + yaml.safe_dump(plugin, sort_keys=False, width=100, allow_unicode=True)


def repository_packages() -> dict[str, str]:
    """Distribution name -> folder, for every package of this repository."""
    found = {}
    for pyproject in REPO_ROOT.glob("*/pyproject.toml"):
        found[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent.name
    return found


def editable_pip_url(folder: str) -> str:
    """`-e ./folder`, after `-e ./dep` for each package of this repository it depends on
    (those are not on any index: the installer must take them from the working tree too)."""
    ours = repository_packages()
    declared = tomllib.loads((REPO_ROOT / folder / "pyproject.toml").read_text())["project"]
    local = [ours[r.name] for r in map(Requirement, declared["dependencies"]) if r.name in ours]
    return " ".join(f"-e ./{name}" for name in [*local, folder])


def project_entry(plugin: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The plugin's `meltano.yml` entry: the Hub definition, installed from the working tree.

    Keys the definition does not own (`config`, `select`, `metadata`, ...) are kept.
    """
    entry = {key: value for key, value in plugin.items() if key not in HUB_ONLY}
    entry["pip_url"] = editable_pip_url(PLUGINS[plugin["name"]][1])
    for key, value in (current or {}).items():
        if key not in plugin and key not in OPTIONAL_FIELDS:
            entry[key] = value
    return entry


def project_text(plugins: dict[str, dict[str, Any]]) -> str:
    """`meltano.yml` with our plugins' entries replaced, everything else kept as written."""
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 100
    rt.indent(mapping=2, sequence=2, offset=0)
    project = rt.load((REPO_ROOT / "meltano.yml").read_text())
    for name, plugin in plugins.items():
        entries = project["plugins"].setdefault(PLUGINS[name][0], [])
        index = next((i for i, e in enumerate(entries) if e["name"] == name), None)
        current = entries[index] if index is not None else None
        entry = project_entry(plugin, current)
        if index is None:
            entries.append(entry)
        else:
            entries[index] = entry
    out = io.StringIO()
    rt.dump(project, out)
    return out.getvalue()


def expected_files() -> dict[Path, str]:
    plugins = {name: definition(name, about(name)) for name in PLUGINS}
    files = {hub_path(name): hub_text(plugin) for name, plugin in plugins.items()}
    files[REPO_ROOT / "meltano.yml"] = project_text(plugins)
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    """Files whose content differs from what would be written (meltano.yml: by meaning,
    since Meltano itself rewrites its layout on `meltano config set`)."""
    out = []
    for path, text in files.items():
        if not path.exists():
            out.append(path)
        elif path.name == "meltano.yml":
            if yaml.safe_load(path.read_text()) != yaml.safe_load(text):
                out.append(path)
        elif path.read_text() != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    files = expected_files()
    differing = stale(files)
    if args.check:
        for path in differing:
            print(
                f"{path.relative_to(REPO_ROOT)} differs from the plugins' --about: run `make hub`",
                file=sys.stderr,
            )
        return 1 if differing else 0
    for path in differing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
