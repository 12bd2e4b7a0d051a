"""Tests. Their data is in tests/fixtures (README there says how each file was made)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The official k8s_audit rules the tests and benchmarks load (k8saudit 0.18.0).
OFFICIAL_RULES = FIXTURES / "rules" / "k8s_audit_rules.yaml"
