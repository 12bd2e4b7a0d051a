"""Event sources, chosen by open params and init_config (see docs/open-params.md)."""
