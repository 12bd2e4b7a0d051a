"""What tests/fixtures/aks/eventhub-bodies.expected.jsonl says a lossless pipeline
delivers, in the shapes the tests compare against."""

from __future__ import annotations

import json
from collections import Counter

from tests import FIXTURES

AKS = FIXTURES / "aks"
EXPECTED = AKS / "eventhub-bodies.expected.jsonl"

Key = tuple[str, str, str | None]  # (auditID, stage, cluster)


def expected_rows() -> list[dict]:
    return [json.loads(line) for line in EXPECTED.read_text().splitlines()]


def expected_keys() -> tuple[Counter[Key], set[Key]]:
    """(multiset of intact events, set of truncated ones)."""
    intact: Counter[Key] = Counter()
    truncated: set[Key] = set()
    for row in expected_rows():
        key = (row["auditID"], row["stage"], row["cluster"])
        if row["truncated"]:
            truncated.add(key)
        else:
            intact[key] += 1
    return intact, truncated
