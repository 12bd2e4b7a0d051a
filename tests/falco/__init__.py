"""Real-Falco tests."""

from harness.falco import AKS_RULES
from tests import OFFICIAL_RULES

SHIPPED_RULES = [OFFICIAL_RULES, AKS_RULES]  # as the Helm values load them
