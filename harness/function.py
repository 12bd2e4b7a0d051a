"""The ingest function as the Functions worker sees it: `function_app`'s indexed
`ingest_audit`. The SDK's `get_functions` checks name uniqueness against what it already
built, so it may run once per process: everything that calls the function's own entry point
(tests, `make run`, the soak) gets it here."""

from __future__ import annotations

from functools import cache

from azure.functions.decorators.function_app import Function


@cache
def ingest_function() -> Function:
    import function_app  # reads its app settings on first use, as the Functions host would

    (function,) = [f for f in function_app.app.get_functions()
                   if f.get_function_name() == "ingest_audit"]
    return function
