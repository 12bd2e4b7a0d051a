"""The ingest function's orchestration (`function_app.py` is its Azure entry point): its app
settings (`settings`), one invocation from Event Hub bodies to queue messages (`ingestor`),
what an invocation did (`report`) and the metrics made of it (`telemetry`)."""
