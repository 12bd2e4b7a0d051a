"""docs/failure-modes.md against the code: every counter its tables name is one the code
keeps, and every reason the code can give is on the page."""

from __future__ import annotations

import re
from pathlib import Path

from extractor.envelope.normalize import DELIVERED, OMITTED, SALVAGED, Reason
from extractor.message.codec import PoisonReason
from ingest import report as ingest_report
from tests.support import metric_names

DOC = Path(__file__).resolve().parents[1] / "docs" / "failure-modes.md"


def counter_cells() -> list[str]:
    """The backticked names of the `counter` column of every table on the page."""
    names: list[str] = []
    column = None
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "counter" in cells:
            column = cells.index("counter")
        elif column is not None and not set(cells[0]) <= {"-"}:
            names += re.findall(r"`([^`]+)`", cells[column])
    return names


def known() -> set[str]:
    reasons = metric_names.reasons()
    report = {value for name, value in vars(ingest_report).items()
              if name.isupper() and isinstance(value, str) and value.islower()}
    plugin = set()
    for name in metric_names.code_names():
        family, _, rest = name.partition(".")
        plugin |= ({f"{family}.{r}" for r in reasons} | {f"{family}.<reason>"}
                   if rest == "<reason>" else {name})
    return {DELIVERED, SALVAGED, OMITTED, *map(str, Reason), *reasons, *report, *plugin}


def test_every_counter_on_the_page_is_kept_by_the_code() -> None:
    named = counter_cells()
    assert len(named) > 20  # the tables were found
    unknown = [n for n in named if n not in known()]
    assert unknown == []


def test_every_reason_the_code_gives_is_on_the_page() -> None:
    text = DOC.read_text()
    missing = [str(r) for r in (*Reason, *PoisonReason)
               if r is not Reason.DUPLICATE and f"{r}" not in text]
    assert missing == []
