"""All the fields a caller asks for, from one event at a time, as one generated function.

The plugin asks for every field of every event (Falco's rules need them), so this beats one
closure call per field: key-path fields are inlined and share their lookups (`objectRef` is
read once for all its fields), and the audit-event guard runs once per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from extractor.fields.access import ExtractError, KeyPaths, compile_source, single_value
from extractor.fields.builders import Arg, Checked, Extract
from extractor.fields.table import FIELDS, compile_field, raw_extractor


def compile_all(requests: Sequence[tuple[int, Arg]]) -> Callable[[object], list]:
    """One function for many (field id, argument) pairs, for a caller that wants them all
    from every event (the plugin does): the list of each pair's result, in order: None, a
    list of strings, or the exception the pair's closure raised.

    Same results as calling each `compile_field` closure; faster because key-path fields
    are inlined and share their lookups (`objectRef` is read once for all its fields).
    """
    closures: list[Extract] = []  # run once the event is known to be an audit event
    checked: list[Checked] = []  # for anything else
    inline: list[tuple[str, ...] | None] = []  # the key path of a field to inline
    for field_id, arg in requests:
        try:
            closures.append(raw_extractor(field_id, arg))
            checked.append(compile_field(field_id, arg))
            inline.append(FIELDS[field_id].key_path)
        except ExtractError as exc:
            closures.append(_raising(exc))
            checked.append(_raising(exc))
            inline.append(None)
    env: dict[str, object] = {}
    walk = KeyPaths()
    results: list[str] = []
    calls: list[str] = []
    for i, (closure, path) in enumerate(zip(closures, inline, strict=True)):
        if path is not None:
            results.append(single_value(walk.value(path)))
        else:
            env[f"c{i}"] = closure
            calls.append(f"    try:\n        r{i} = c{i}(event)\n"
                         f"    except Exception as exc:\n        r{i} = exc")
            results.append(f"r{i}")
    source = "\n".join([
        "def run_all(event):",
        "    if event.__class__ is not dict or 'auditID' not in event:",
        "        return each(event)",
        "    get = event.get",
        *walk.lines,
        *calls,
        "    return [" + ", ".join(results) + "]",
    ])
    env["each"] = lambda event: [_outcome(c, event) for c in checked]
    return compile_source(source, "run_all", env)


def _raising(exc: Exception) -> Checked:
    def fail(_event: object) -> list[str] | None:
        raise exc

    return fail


def _outcome(closure: Checked, event: object) -> list[str] | Exception | None:
    try:
        return closure(event)
    except Exception as exc:
        return exc
