"""Azure Storage I/O shared by the ingest function and the plugin's queue source.

The wire format itself is pure and lives in `extractor.message`; this package only builds
clients and moves bytes.
"""
