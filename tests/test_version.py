"""One version (plugin/k8saudit_aks/__init__.py): everything that prints or packages it
agrees, so a release cannot ship an image tag or docs naming another."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from plugin.k8saudit_aks import __version__
from plugin.k8saudit_aks.plugin import K8sAuditAksPlugin

ROOT = Path(__file__).resolve().parents[1]
MENTIONS = [  # (file, pattern whose group 1 is the version it names)
    ("deploy/falco/values-aks.yaml", r'tag: "([0-9.]+)"'),
    ("deploy/falco/Dockerfile", r"falco-k8saudit-aks:([0-9.]+)"),
    ("docs/running-in-aks.md", r"falco-k8saudit-aks:([0-9.]+)"),
    ("docs/install.md", r"this plugin is ([0-9.]+[0-9])"),
    ("README.md", r"version ([0-9.]+[0-9]) \(the official"),
    ("CHANGELOG.md", r"^## \[([0-9.]+)\]"),  # the newest entry comes first
    ("docs/install.md", r"k8saudit-aks-([0-9.]+[0-9])-linux"),
]


def test_the_plugin_reports_the_version() -> None:
    assert K8sAuditAksPlugin.version == __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] \
        == __version__


@pytest.mark.parametrize(("path", "pattern"), MENTIONS)
def test_every_mention_names_the_version(path: str, pattern: str) -> None:
    found = re.findall(pattern, (ROOT / path).read_text(), re.MULTILINE)
    assert found and found[0] == __version__, path
    if path != "CHANGELOG.md":  # it names every release
        assert set(found) == {__version__}, path
