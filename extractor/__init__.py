"""Pure Python: AKS diagnostic envelopes -> audit events -> queue messages; ka.* fields."""
