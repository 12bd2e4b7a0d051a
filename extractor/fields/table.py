"""The `ka.*` fields of the Go `k8saudit` plugin (0.18.0), declared once, as data.

`fields.json` is the single table, in upstream order: each entry is what
`plugin_get_fields` returns for the field, plus `build`: the builder of its extractor
(`extractor.fields.builders`) and the builder's arguments (a list stands for a key path).
`compile_field` checks a request's argument and adds the audit-event guard.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from extractor.fields import builders
from extractor.fields.builders import Arg, Build, Checked, Extract, ExtractError, Field, guarded

TABLE = Path(__file__).with_name("fields.json")
# Builders a table entry may name: those called with its arguments, and ready ones.
FACTORIES: dict[str, Callable[..., Build]] = {name: getattr(builders, name) for name in (
    "constant", "container_effective", "container_field", "container_host_ports",
    "container_images", "container_joined", "first_container_image", "from_keys",
    "from_keys_list", "rules_field", "subject_names", "values")}
READY: dict[str, Build] = {name: getattr(builders, name) for name in (
    "any_container_privileged", "source_ips", "target_pod_name", "uri_param",
    "volume_hostpath_match", "volume_types")}
ARGS = {None: (False, False, False), "index": (False, True, False),
        "required key": (True, False, True)}


def _field(entry: dict[str, Any]) -> Field:
    name, *args = entry["build"]
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    if name in READY:
        if args or kwargs:
            raise ValueError(f"{entry['name']}: {name} takes no arguments")
        build = READY[name]
    else:
        build = FACTORIES[name](*(tuple(a) if isinstance(a, list) else a for a in args),
                               **kwargs)
    required, index, key = ARGS[entry["arg"]]
    return Field(entry["name"], "string", entry["list"], required, index, key, entry["desc"],
                 build=build, key_path=tuple(args) if name == "from_keys" else None)


FIELDS: tuple[Field, ...] = tuple(_field(e) for e in json.loads(TABLE.read_text("utf-8")))


@cache
def fields_json() -> str:
    """The JSON array `plugin_get_fields` returns."""
    return json.dumps([f.info() for f in FIELDS], separators=(",", ":"))


def compile_field(field_id: int, arg: Arg) -> Checked:
    """The extractor of field `field_id` for one argument (an int index, a str key, None),
    for any parsed JSON value."""
    return guarded(raw_extractor(field_id, arg))


def raw_extractor(field_id: int, arg: Arg) -> Extract:
    """The builder's closure for a checked argument, without the audit-event guard: for a
    caller that checks each event once (`extractor.fields.compiled`)."""
    if not 0 <= field_id < len(FIELDS):
        raise ExtractError(f"unknown field id {field_id}")
    spec = FIELDS[field_id]
    if arg is None:
        if spec.arg_required:
            raise ExtractError(f"{spec.name} requires an argument")
    elif spec.arg_index:
        if arg.__class__ is not int or arg < 0:
            raise ExtractError(f"{spec.name} takes a non-negative index, not {arg!r}")
    elif spec.arg_key:
        if arg.__class__ is not str:
            raise ExtractError(f"{spec.name} takes a key, not {arg!r}")
    else:
        raise ExtractError(f"{spec.name} takes no argument")
    return spec.build(arg)
