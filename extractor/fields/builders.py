"""How the Go `k8saudit` plugin (0.18.0) reads each kind of `ka.*` field: closure builders.

A builder turns a field's argument into a closure over one parsed audit event (a dict with
an `auditID`); `guarded` adds, once, upstream's checks for anything else. Closures return
None (no value), a list of strings, or raise `ExtractError` where upstream fails the call.
Upstream's semantics, quirks included, are kept on purpose (docs/differences.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extractor.fields.access import (
    MISSING,
    ExtractError,
    KeyPaths,
    arg_index_filter,
    compile_source,
    lookup,
    marshal,
    query_param,
    single_value,
    strings_skip_nil,
    strings_strict,
    to_string,
    values_recursive,
)

Arg = int | str | None
Event = dict[str, Any]  # a parsed audit event: an object with an `auditID`
Extract = Callable[[Event], list[str] | None]  # a builder's closure: events only
Checked = Callable[[object], list[str] | None]  # with the guard: any parsed JSON value
Build = Callable[[Arg], Extract]


@dataclass(frozen=True, slots=True)
class Field:
    """One field as `plugin_get_fields` lists it, plus the builder of its extractor."""

    name: str
    type: str
    is_list: bool
    arg_required: bool
    arg_index: bool
    arg_key: bool
    desc: str
    display: str = ""
    properties: tuple[str, ...] | None = None
    build: Build = field(kw_only=True, repr=False, compare=False)
    key_path: tuple[str, ...] | None = field(default=None, kw_only=True)  # from_keys fields

    def info(self) -> dict:
        """This field in the shape of the plugin API's field list."""
        return {
            "name": self.name,
            "type": self.type,
            "isList": self.is_list,
            "arg": {
                "isRequired": self.arg_required,
                "isIndex": self.arg_index,
                "isKey": self.arg_key,
            },
            "display": self.display,
            "desc": self.desc,
            "properties": None if self.properties is None else list(self.properties),
        }


def not_audit_event(event: object) -> list[str] | None:
    """Upstream's first checks, for events that are not an object with an `auditID`.

    Only documents starting with `{` or `[` are decoded (anything else fails the call); a
    decoded document without `auditID` (an array never has one) has no fields at all.
    """
    if event.__class__ is dict or event.__class__ is list:
        return None
    raise ExtractError("broken JSON data")


def is_audit_event(event: object) -> bool:
    return event.__class__ is dict and "auditID" in event


def guarded(extract: Extract) -> Checked:
    """The one guard: a builder's closure for any parsed JSON value. (`compile_all` checks
    once per event instead.)"""

    def checked(event: object) -> list[str] | None:
        if not is_audit_event(event):
            return not_audit_event(event)
        return extract(event)  # type: ignore[arg-type]  # is_audit_event: a dict

    return checked


# --- builders: each mirrors one upstream extraction shape --------------------------------

SPEC = ("requestObject", "spec")
CONTAINERS = (*SPEC, "containers")


def from_keys(*path: str) -> Build:
    """Upstream's `extractFromKeys` for a single-valued field: the value at `path`. The
    table also gives `compile_all` the path (`Field.key_path`), to inline it."""
    walk = KeyPaths()
    local = walk.value(path)
    extract: Extract = compile_source("\n".join([
        "def extract(event):", "    get = event.get", *walk.lines,
        f"    return {single_value(local)}"]), "extract", {})

    def build(_arg: Arg) -> Extract:
        return extract

    return build


def from_keys_list(*path: str) -> Build:
    """Upstream's `extractFromKeys` for a list field: the array at `path`, element-wise."""
    value_at = lookup(path)

    def build(_arg: Arg) -> Extract:
        def extract(event: Event) -> list[str] | None:
            value = value_at(event)
            if value is MISSING:
                return None
            if value.__class__ is not list:
                raise ExtractError("wrong type conversion")
            return [v if v.__class__ is str else marshal(v) for v in value] or None

        return extract

    return build


Finish = Callable[[list, Arg], "list[str] | None"]


def recursive(*path: str, finish: Finish) -> Build:
    """A field computed from `getValuesRecursive` along `path` (with the index argument).

    `finish(values, arg)` turns the values found into the field's value; a path that is not
    available has no value.
    """
    first = path[0]

    def build(arg: Arg) -> Extract:
        index = arg_index_filter(arg)

        def extract(event: Event) -> list[str] | None:
            if event.get(first) is None:
                return None  # absent or null: the usual case, answered without the walk
            found = values_recursive(event, index, path)
            return None if found is None else finish(found, arg)

        return extract

    return build


def values(*path: str, strict: bool = False) -> Build:
    """The values along `path` as strings: values missing under some array element are
    skipped (`arrayAsStringsSkipNil`), or fail the call when `strict` (`arrayAsStrings`).
    """
    convert = strings_strict if strict else strings_skip_nil
    return recursive(*path, finish=lambda found, _arg: convert(found) or None)


def container_field(kind: tuple[str, ...], *keys: str, strict: bool = False) -> Build:
    """A per-container value of one container list (`containers`, `initContainers`...)."""
    return values(*kind, *keys, strict=strict)


def _repositories(found: list, _arg: Arg) -> list[str] | None:
    """Upstream's repository of each image: up to the first `:`, then up to the first `@`."""
    return [image.partition(":")[0].partition("@")[0] for image in strings_strict(found)] or None


def container_images(kind: tuple[str, ...], repository: bool = False) -> Build:
    """Upstream's `readContainerImages`/`readContainerRepositories`: a nil image fails."""
    if repository:
        return recursive(*kind, "image", finish=_repositories)
    return values(*kind, "image", strict=True)


def first_container_image(repository: bool) -> Build:
    """The deprecated single-container fields: image (or repository) of containers[0]."""
    per_container = container_images(CONTAINERS, repository=repository)
    return lambda _arg: per_container(0)


def _joined(found: list, _arg: Arg) -> list[str] | None:
    joined = []
    for words in found:
        if words is MISSING:
            continue
        if words.__class__ is not list or any(w.__class__ is not str for w in words):
            raise ExtractError("wrong type conversion")
        joined.append(" ".join(words))
    return joined or None


def container_joined(kind: tuple[str, ...], key: str) -> Build:
    """`command`/`args` of each container, its strings joined by spaces.

    Containers without the key are skipped; a key that is not an array of strings fails.
    """
    return recursive(*kind, key, finish=_joined)


def _host_ports(found: list, _arg: Arg) -> list[str] | None:
    ports = []
    for container_ports in found:
        if container_ports is MISSING:
            continue
        if container_ports.__class__ is not list:
            raise ExtractError("wrong type conversion")
        for port in container_ports:
            if port.__class__ is dict:
                value = port.get("hostPort", MISSING)
                if value is MISSING:
                    value = port.get("containerPort", MISSING)
                if value is not MISSING:
                    ports.append(to_string(value))
    return ports or None


def container_host_ports(kind: tuple[str, ...]) -> Build:
    """Upstream's `readContainerHostPorts`: each port's hostPort, else its containerPort."""
    return recursive(*kind, "ports", finish=_host_ports)


def container_effective(kind: tuple[str, ...], key: str) -> Build:
    """Upstream's `readFromContainerEffectively`: each container's value, else the pod's.

    Upstream reads `spec.<key>` and `<container>.<key>`, not their `securityContext`, so
    in practice this yields the pod default "0" for every container: kept as is.
    """
    pod_lookup = lookup((*SPEC, key))
    path = (*kind, key)

    def build(arg: Arg) -> Extract:
        index = arg_index_filter(arg)

        def extract(event: Event) -> list[str] | None:
            pod_value = pod_lookup(event)
            default = "0" if pod_value is MISSING else to_string(pod_value)
            found = values_recursive(event, index, path)
            if found is None:
                return None
            return [default if v is MISSING else to_string(v) for v in found] or None

        return extract

    return build


def _array_elements(found: list, _arg: Arg) -> list[str] | None:
    out: list[str] = []
    for value in found:
        if value.__class__ is list:
            out += [v if v.__class__ is str else marshal(v) for v in value]
    return out or None


def rules_field(*path: str) -> Build:
    """Upstream's `extractRulesField`: the elements of every array found along `path`."""
    return recursive(*path, finish=_array_elements)


def _any_true(found: list, _arg: Arg) -> list[str]:
    return ["true" if True in [v is True for v in found] else "false"]


any_container_privileged = recursive(*CONTAINERS, "securityContext", "privileged", finish=_any_true)
"""Whether some container has `securityContext.privileged: true` ("true"/"false")."""


def _volume_types(found: list, _arg: Arg) -> list[str] | None:
    # upstream dereferences the nil a volume-less array element leaves: a crash; no value
    if MISSING in found:
        return None
    return [
        k for volume in found if volume.__class__ is dict for k in volume if k != "name"
    ] or None


volume_types = recursive(*SPEC, "volumes", "", finish=_volume_types)
"""Every key but `name` of every volume object."""


def _hostpath_match(found: list, arg: Arg) -> list[str] | None:
    key = arg if isinstance(arg, str) else ""
    if not key:
        return None  # upstream slices `key[:-1]` and crashes: no value
    prefix = key[:-1] if key.endswith("*") else None
    for host_path in strings_skip_nil(found):
        if host_path == key or (prefix is not None and host_path.startswith(prefix)):
            return ["true"]
    return ["false"]


volume_hostpath_match = recursive(*SPEC, "volumes", "hostPath", "path", finish=_hostpath_match)
"""Whether a hostPath equals the key, or starts with it if the key ends in `*`.

The key argument doubles as index 0 (`arg_index_filter`), so only the first volume counts.
"""


def uri_param(arg: Arg) -> Extract:
    """The first value of query parameter `arg` in `requestURI`, parsed the way Go does."""
    name = arg if isinstance(arg, str) else ""

    def extract(event: Event) -> list[str] | None:
        uri = event.get("requestURI", MISSING)
        if uri is MISSING:
            return None
        value = query_param(uri if uri.__class__ is str else marshal(uri), name)
        return None if value is None else [value]

    return extract


def source_ips(arg: Arg) -> Extract:
    """The event's top-level `sourceIPs`, element-wise (upstream reads a wrong path).

    Anything but an array has no value; an index picks one address.
    """
    index = arg_index_filter(arg)

    def extract(event: Event) -> list[str] | None:
        ips = event.get("sourceIPs")
        if ips.__class__ is not list:
            return None
        if index is None:
            return [to_string(ip) for ip in ips] or None
        return [to_string(ips[index])] if index < len(ips) else None

    return extract


def target_pod_name(_arg: Arg) -> Extract:
    """The response object's name, for requests on the `pods` resource itself (a
    `subresource` counts only as a non-empty string, as upstream reads it)."""
    name_lookup = lookup(("responseObject", "metadata", "name"))

    def extract(event: Event) -> list[str] | None:
        ref = event.get("objectRef")
        if ref.__class__ is not dict or ref.get("resource") != "pods":
            return None
        subresource = ref.get("subresource")
        if subresource.__class__ is str and subresource:
            return None
        name = name_lookup(event)
        return None if name is MISSING else [to_string(name)]

    return extract


def subject_names(kind: str, namespaced: bool = False) -> Build:
    """Names (or `namespace:name`) of the binding subjects of one kind having them."""

    def finish(found: list, _arg: Arg) -> list[str] | None:
        names = []
        for subjects in found:
            if subjects is MISSING:  # an array element without `subjects`
                continue
            if subjects.__class__ is not list:  # upstream: `subjects` must be an array
                raise ExtractError("wrong type conversion")
            for subject in subjects:
                if subject.__class__ is not dict or subject.get("kind") != kind:
                    continue
                name = subject.get("name", MISSING)
                if name is MISSING:
                    continue
                if not namespaced:
                    names.append(to_string(name))
                elif "namespace" in subject:
                    names.append(f"{to_string(subject['namespace'])}:{to_string(name)}")
        return names or None

    return recursive("requestObject", "subjects", finish=finish)


def constant(value: str) -> Build:
    """A fixed value for every audit event (the deprecated `has_name` answers "true")."""

    def build(_arg: Arg) -> Extract:
        def extract(event: Event) -> list[str] | None:
            return [value]

        return extract

    return build
