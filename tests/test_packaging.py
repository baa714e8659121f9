"""The installed package is the source tree: every subpackage is listed in pyproject."""
from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"tinylogbert": ROOT / "core", "dashboard": ROOT / "dashboard"}


def _packages_in(name: str, folder: Path) -> set[str]:
    return {".".join([name, *init.parent.relative_to(folder).parts])
            for init in folder.rglob("__init__.py")}


def test_pyproject_lists_every_package_of_the_source_tree():
    """A subpackage missing from ``[tool.setuptools] packages`` is left out of a wheel, and an
    editable install still finds it: only a real install would fail."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"tinylogbert": "core"}
    on_disk = set().union(*(_packages_in(name, folder) for name, folder in FOLDERS.items()))
    assert set(config["packages"]) == on_disk
