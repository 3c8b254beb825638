"""singer-sdk's private members that safe-singer-common uses, one function per seam.

Kept in one file so that a singer-sdk bump is checked here; ``tests/test_common.py`` fails the
day a seam moves.
"""

from __future__ import annotations

from typing import Any

from singer_sdk.plugin_base import PluginBase


def config_dict(plugin: PluginBase) -> dict[str, Any]:
    """The config singer-sdk assembled for ``plugin``, before it is validated (``config`` is a
    read-only view of it)."""
    return plugin._config
