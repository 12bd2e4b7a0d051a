"""The plugin's metric names as the sources count them and as docs/configuration.md lists
them, and the name Falco's Prometheus endpoint gives each."""

from __future__ import annotations

import re
from pathlib import Path

from extractor.envelope.normalize import Reason
from extractor.message.codec import PoisonReason
from plugin.k8saudit_aks.stats import SERVED_FROM_START

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "plugin" / "k8saudit_aks").rglob("*.py"))
DOCS = ROOT / "docs" / "configuration.md"
PREFIX = "falcosecurity_plugins_k8saudit_aks_"

# libsinsp's Prometheus conversion (userspace/libsinsp/metrics_collector.cpp,
# prometheus_metrics_converter): unit words are cut out of the qualified name, dots become
# underscores, and the unit of a plugin metric (always COUNT) is appended as "total".
UNIT_WORDS = re.compile(r"(_kb|_bytes|_mb|_perc|_percentage|_ratio|_ns|_ts|_sec|_total)")

# Where the sources name a metric: a literal counter or gauge name, and the two families
# counted by reason.
NAMED = re.compile(r"""(?:_count|stats\.add|\.gauge)\(\s*"([a-z0-9_.]+)"|"""
                   r"""_counts\["([a-z0-9_.]+)"\]|counts\["([a-z_]+)"\]""")
FAMILIES = re.compile(r"""f"(skipped|dead_lettered)\.\{""")
# Reasons the queue source gives besides the enums.
LITERAL_REASONS = re.compile(r"""(?:_poison\(held,|Unreadable\()\s*"([a-z0-9_]+)\"""")


def served(name: str) -> str:
    """What Falco's web server calls plugin metric `name`: the plugin name and a dot stand
    before it when libsinsp cuts unit words, so only words inside the name are cut."""
    cut = UNIT_WORDS.sub("", f"k8saudit-aks.{name}_")
    return "falcosecurity_plugins_" + cut.replace("-", "_").replace(".", "_") + "total"


def code_names() -> set[str]:
    names: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        for match in NAMED.finditer(text):
            name = next(g for g in match.groups() if g)
            family, dot, _ = name.partition(".")
            names.add(f"{family}.<reason>" if dot else name)
        names.update(f"{family}.<reason>" for family in FAMILIES.findall(text))
    names.add("seconds_since_last_receive")  # Stats.metrics adds it
    names.update(SERVED_FROM_START)  # Stats starts them at 0
    return names


def documented() -> dict[str, str]:
    """metric -> Prometheus name, from the table in docs/configuration.md."""
    rows = re.findall(r"^\| `([a-z_.<>]+)` \| `([a-z_<>]+)` \| (?:counter|gauge) \|",
                      DOCS.read_text(), re.MULTILINE)
    return {name: PREFIX + prom for name, prom in rows}


def reasons() -> set[str]:
    text = "".join(path.read_text() for path in SOURCES)
    return {*map(str, Reason), *map(str, PoisonReason), *LITERAL_REASONS.findall(text)}
