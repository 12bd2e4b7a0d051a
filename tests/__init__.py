"""Tests. Their data is in tests/fixtures (README there says how each file was made)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
