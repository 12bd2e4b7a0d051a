"""The `ka.*` fields of the Go `k8saudit` plugin (0.18.0), declared once, compiled to closures.

`FIELDS` is the single table: its metadata is what `plugin_get_fields` returns and each
entry's builder turns a (field, argument) pair into a closure over a parsed audit event.
Closures return None (no value), a list of strings, or raise `ExtractError` where upstream
fails the call; they accept any JSON value. Upstream's semantics, quirks included, are kept
on purpose (see docs/differences.md for the only deliberate deviations).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from extractor.access import (
    MISSING,
    ExtractError,
    arg_index_filter,
    marshal,
    query_param,
    strings_skip_nil,
    strings_strict,
    to_string,
    values_recursive,
)

__all__ = [
    "FIELDS", "ExtractError", "Field", "compile_all", "compile_field", "fields_json",
    "markdown_table",
]

Arg = int | str | None
Extract = Callable[[object], list[str] | None]
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


def _not_audit_event(event: object) -> list[str] | None:
    """Upstream's first checks, for events that are not an object with an `auditID`.

    Only documents starting with `{` or `[` are decoded (anything else fails the call); a
    decoded document without `auditID` (an array never has one) has no fields at all.
    """
    if event.__class__ is dict or event.__class__ is list:
        return None
    raise ExtractError("broken JSON data")


# --- builders: each mirrors one upstream extraction shape --------------------------------

ANNOTATIONS = ("annotations",)
SPEC = ("requestObject", "spec")
CONTAINERS = (*SPEC, "containers")
INIT_CONTAINERS = (*SPEC, "initContainers")
EPHEMERAL_CONTAINERS = (*SPEC, "ephemeralContainers")


def _lookup(path: tuple[str, ...]) -> Callable[[dict], object]:
    """fastjson's `Value.Get(path...)` from the event object: the value or `MISSING`."""

    def lookup(event: dict) -> object:
        value: object = event
        for key in path:
            if value.__class__ is not dict:
                return MISSING
            value = value.get(key, MISSING)
        return value

    return lookup


def from_keys(*path: str) -> Build:
    """Upstream's `extractFromKeys` for a single-valued field: the value at `path`.

    The walk of `_lookup` is unrolled here (paths have one to four keys): this is the
    shape of most fields rules use, and the loop would cost a third of the call.
    """
    k1, k2, k3, k4 = (*path, "", "", "")[:4]
    assert 1 <= len(path) <= 4 and all(path), path

    def build(_arg: Arg) -> Extract:
        def extract(event: object) -> list[str] | None:
            if event.__class__ is not dict or "auditID" not in event:
                return _not_audit_event(event)
            value = event.get(k1, MISSING)
            if k2:
                if value.__class__ is not dict:
                    return None
                value = value.get(k2, MISSING)
                if k3:
                    if value.__class__ is not dict:
                        return None
                    value = value.get(k3, MISSING)
                    if k4:
                        if value.__class__ is not dict:
                            return None
                        value = value.get(k4, MISSING)
            if value.__class__ is str:
                return [value]
            return None if value is MISSING else [marshal(value)]

        return extract

    build.key_path = path  # type: ignore[attr-defined]  # lets compile_all inline it
    return build


def from_keys_list(*path: str) -> Build:
    """Upstream's `extractFromKeys` for a list field: the array at `path`, element-wise."""
    lookup = _lookup(path)

    def build(_arg: Arg) -> Extract:
        def extract(event: object) -> list[str] | None:
            if event.__class__ is not dict or "auditID" not in event:
                return _not_audit_event(event)
            value = lookup(event)
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

        def extract(event: object) -> list[str] | None:
            if event.__class__ is not dict or "auditID" not in event:
                return _not_audit_event(event)
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
    pod_lookup = _lookup((*SPEC, key))
    path = (*kind, key)

    def build(arg: Arg) -> Extract:
        index = arg_index_filter(arg)

        def extract(event: object) -> list[str] | None:
            if event.__class__ is not dict or "auditID" not in event:
                return _not_audit_event(event)
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

    def extract(event: object) -> list[str] | None:
        if event.__class__ is not dict or "auditID" not in event:
            return _not_audit_event(event)
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

    def extract(event: object) -> list[str] | None:
        if event.__class__ is not dict or "auditID" not in event:
            return _not_audit_event(event)
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
    name_lookup = _lookup(("responseObject", "metadata", "name"))

    def extract(event: object) -> list[str] | None:
        if event.__class__ is not dict or "auditID" not in event:
            return _not_audit_event(event)
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
        def extract(event: object) -> list[str] | None:
            if event.__class__ is not dict or "auditID" not in event:
                return _not_audit_event(event)
            return [value]

        return extract

    return build


# (is_list, arg_required, arg_index, arg_key) of the field kinds upstream declares
LIST = (True, False, False, False)
INDEXED_LIST = (True, False, True, False)
REQUIRED_KEY = (False, True, False, True)


def _field(
    name: str, build: Build, desc: str, shape: tuple[bool, bool, bool, bool] = (False,) * 4
) -> Field:
    return Field(name, "string", *shape, desc, build=build)


# --- the table, in upstream order --------------------------------------------------------

FIELDS: tuple[Field, ...] = (
    _field("ka.auditid", from_keys("auditID"), "The unique id of the audit event"),
    _field(
        "ka.stage",
        from_keys("stage"),
        "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)",
    ),
    _field(
        "ka.auth.decision",
        from_keys(*ANNOTATIONS, "authorization.k8s.io/decision"),
        "The authorization decision",
    ),
    _field(
        "ka.auth.reason",
        from_keys(*ANNOTATIONS, "authorization.k8s.io/reason"),
        "The authorization reason",
    ),
    _field(
        "ka.auth.openshift.decision",
        from_keys(*ANNOTATIONS, "authentication.openshift.io/decision"),
        "The authentication decision of the openshfit apiserver extention. Only available"
        " on openshift clusters",
    ),
    _field(
        "ka.validations.admission.policy.failure",
        from_keys(*ANNOTATIONS, "validation.policy.admission.k8s.io/validation_failure"),
        "The validation failure reason from a Validation Admission Policy",
    ),
    _field(
        "ka.security.pod.violations",
        from_keys(*ANNOTATIONS, "pod-security.kubernetes.io/audit-violations"),
        "The violation reason for pod security policy ",
    ),
    _field(
        "ka.auth.openshift.username",
        from_keys(*ANNOTATIONS, "authentication.openshift.io/username"),
        "The user name performing the openshift authentication operation. Only available "
        "on openshift clusters",
    ),
    _field("ka.user.name", from_keys("user", "username"), "The user name performing the request"),
    _field(
        "ka.user.groups",
        from_keys_list("user", "groups"),
        "The groups to which the user belongs",
        LIST,
    ),
    _field(
        "ka.impuser.name",
        from_keys("impersonatedUser", "username"),
        "The impersonated user name",
    ),
    _field("ka.verb", from_keys("verb"), "The action being performed"),
    _field("ka.uri", from_keys("requestURI"), "The request URI as sent from client to server"),
    _field(
        "ka.uri.param",
        uri_param,
        "The value of a given query parameter in the uri (e.g. when uri=/foo?key=val, "
        "ka.uri.param[key] is val).",
        REQUIRED_KEY,
    ),
    _field("ka.target.name", from_keys("objectRef", "name"), "The target object name"),
    _field(
        "ka.target.namespace",
        from_keys("objectRef", "namespace"),
        "The target object namespace",
    ),
    _field("ka.target.resource", from_keys("objectRef", "resource"), "The target object resource"),
    _field(
        "ka.target.subresource",
        from_keys("objectRef", "subresource"),
        "The target object subresource",
    ),
    _field("ka.target.pod.name", target_pod_name, "The target pod name"),
    _field(
        "ka.req.binding.subjects",
        from_keys_list("requestObject", "subjects"),
        "When the request object refers to a cluster role binding, the subject (e.g. "
        "account/users) being linked by the binding",
        LIST,
    ),
    _field(
        "ka.req.binding.subjects.user_names",
        subject_names("User"),
        "When the request object refers to a cluster role binding, the subject user names"
        " being linked by the binding",
        LIST,
    ),
    _field(
        "ka.req.binding.subjects.serviceaccount_names",
        subject_names("ServiceAccount"),
        "When the request object refers to a cluster role binding, the subject service "
        "account names being linked by the binding",
        LIST,
    ),
    _field(
        "ka.req.binding.subjects.serviceaccount_ns_names",
        subject_names("ServiceAccount", namespaced=True),
        "When the request object refers to a cluster role binding, the subject "
        "serviceaccount namespaced names being linked by the binding, e.g. a list "
        "containing: mynamespace:myserviceaccount",
        LIST,
    ),
    _field(
        "ka.req.binding.subjects.group_names",
        subject_names("Group"),
        "When the request object refers to a cluster role binding, the subject group "
        "names being linked by the binding",
        LIST,
    ),
    _field(
        "ka.req.binding.role",
        from_keys("requestObject", "roleRef", "name"),
        "When the request object refers to a cluster role binding, the role being linked "
        "by the binding",
    ),
    _field(
        "ka.req.binding.subject.has_name",
        constant("true"),
        'Deprecated, always returns "N/A". Only provided for backwards compatibility',
        REQUIRED_KEY,
    ),
    _field(
        "ka.req.configmap.name",
        from_keys("objectRef", "name"),
        "If the request object refers to a configmap, the configmap name",
    ),
    _field(
        "ka.req.configmap.obj",
        from_keys("requestObject", "data"),
        "If the request object refers to a configmap, the entire configmap object",
    ),
    _field(
        "ka.req.pod.containers.args",
        container_joined(CONTAINERS, "args"),
        "When the request object refers to a pod, the container's args.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.command",
        container_joined(CONTAINERS, "command"),
        "When the request object refers to a pod, the container's command.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.name",
        container_field(CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the container's names.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.image",
        container_images(CONTAINERS),
        "When the request object refers to a pod, the container's images.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.container.image",
        first_container_image(repository=False),
        "Deprecated by ka.req.pod.containers.image. Returns the image of the first container only",
    ),
    _field(
        "ka.req.pod.containers.image.repository",
        container_images(CONTAINERS, repository=True),
        "The same as req.container.image, but only the repository part (e.g. falcosecurity/falco).",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.container.image.repository",
        first_container_image(repository=True),
        "Deprecated by ka.req.pod.containers.image.repository. Returns the repository of "
        "the first container only",
    ),
    _field(
        "ka.req.pod.host_ipc",
        from_keys(*SPEC, "hostIPC"),
        "When the request object refers to a pod, the value of the hostIPC flag.",
    ),
    _field(
        "ka.req.pod.host_network",
        from_keys(*SPEC, "hostNetwork"),
        "When the request object refers to a pod, the value of the hostNetwork flag.",
    ),
    _field(
        "ka.req.container.host_network",
        from_keys(*SPEC, "hostNetwork"),
        "Deprecated alias for ka.req.pod.host_network",
    ),
    _field(
        "ka.req.pod.host_pid",
        from_keys(*SPEC, "hostPID"),
        "When the request object refers to a pod, the value of the hostPID flag.",
    ),
    _field(
        "ka.req.pod.containers.host_port",
        container_host_ports(CONTAINERS),
        "When the request object refers to a pod, all container's hostPort values.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.privileged",
        container_field(CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.container.privileged",
        any_container_privileged,
        "Deprecated by ka.req.pod.containers.privileged. Returns true if any container "
        "has privileged=true",
    ),
    _field(
        "ka.req.pod.containers.allow_privilege_escalation",
        container_field(CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all containers",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.read_only_fs",
        container_field(CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all containers",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.run_as_user",
        from_keys(*SPEC, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid specified in the "
        "security context for the pod. See ....containers.run_as_user for the runAsUser "
        "for individual containers",
    ),
    _field(
        "ka.req.pod.containers.run_as_user",
        container_field(CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all containers",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.eff_run_as_user",
        container_effective(CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no uid is specified",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.run_as_group",
        from_keys(*SPEC, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid specified in the "
        "security context for the pod. See ....containers.run_as_group for the runAsGroup"
        " for individual containers",
    ),
    _field(
        "ka.req.pod.containers.run_as_group",
        container_field(CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all containers",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.eff_run_as_group",
        container_effective(CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no gid is specified",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.containers.proc_mount",
        container_field(CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount types for all containers",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.role.rules",
        from_keys_list("requestObject", "rules"),
        "When the request object refers to a role/cluster role, the rules associated with the role",
        LIST,
    ),
    _field(
        "ka.req.role.rules.apiGroups",
        rules_field("requestObject", "rules", "apiGroups"),
        "When the request object refers to a role/cluster role, the api groups associated"
        " with the role's rules",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.role.rules.nonResourceURLs",
        rules_field("requestObject", "rules", "nonResourceURLs"),
        "When the request object refers to a role/cluster role, the non resource urls "
        "associated with the role's rules",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.role.rules.verbs",
        rules_field("requestObject", "rules", "verbs"),
        "When the request object refers to a role/cluster role, the verbs associated with"
        " the role's rules",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.role.rules.resources",
        rules_field("requestObject", "rules", "resources"),
        "When the request object refers to a role/cluster role, the resources associated "
        "with the role's rules",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.fs_group",
        from_keys(*SPEC, "securityContext", "fsGroup"),
        "When the request object refers to a pod, the fsGroup gid specified by the "
        "security context.",
    ),
    _field(
        "ka.req.pod.supplemental_groups",
        from_keys_list(*SPEC, "securityContext", "supplementalGroups"),
        "When the request object refers to a pod, the supplementalGroup gids specified by"
        " the security context.",
        LIST,
    ),
    _field(
        "ka.req.pod.containers.add_capabilities",
        container_field(CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, all capabilities to add when running "
        "the container.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.service.type",
        from_keys(*SPEC, "type"),
        "When the request object refers to a service, the service type",
    ),
    _field(
        "ka.req.service.ports",
        values(*SPEC, "ports"),
        "When the request object refers to a service, the service's ports",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.volumes.hostpath",
        values(*SPEC, "volumes", "hostPath", "path"),
        "When the request object refers to a pod, all hostPath paths specified for all volumes",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.volume.hostpath",
        volume_hostpath_match,
        "Deprecated by ka.req.pod.volumes.hostpath. Return true if the provided (host) "
        "path prefix is used by any volume",
        REQUIRED_KEY,
    ),
    _field(
        "ka.req.pod.volumes.flexvolume_driver",
        values(*SPEC, "volumes", "flexVolume", "driver"),
        "When the request object refers to a pod, all flexvolume drivers specified for all volumes",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.volumes.volume_type",
        volume_types,
        "When the request object refers to a pod, all volume types for all volumes",
        INDEXED_LIST,
    ),
    _field(
        "ka.resp.name",
        from_keys("responseObject", "metadata", "name"),
        "The response object name",
    ),
    _field("ka.response.code", from_keys("responseStatus", "code"), "The response code"),
    _field(
        "ka.response.reason",
        from_keys("responseStatus", "reason"),
        "The response reason (usually present only for failures)",
    ),
    _field(
        "ka.useragent",
        from_keys("userAgent"),
        "The useragent of the client who made the request to the apiserver",
    ),
    _field(
        "ka.sourceips",
        source_ips,
        "The IP addresses of the client who made the request to the apiserver",
        INDEXED_LIST,
    ),
    _field(
        "ka.cluster.name",
        from_keys(*ANNOTATIONS, "cluster_name"),
        "The name of the k8s cluster",
    ),
    _field(
        "ka.req.pod.initContainers.name",
        container_field(INIT_CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the init containers names.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.image",
        container_images(INIT_CONTAINERS),
        "When the request object refers to a pod, the init containers images.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.image.repository",
        container_images(INIT_CONTAINERS, repository=True),
        "The same as ka.req.pod.initContainers.image, but only the repository part (e.g. "
        "falcosecurity/falco).",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.command",
        container_joined(INIT_CONTAINERS, "command"),
        "When the request object refers to a pod, the init containers commands.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.args",
        container_joined(INIT_CONTAINERS, "args"),
        "When the request object refers to a pod, the init containers args.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.privileged",
        container_field(INIT_CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.allow_privilege_escalation",
        container_field(INIT_CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.read_only_fs",
        container_field(INIT_CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.run_as_user",
        container_field(INIT_CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.eff_run_as_user",
        container_effective(INIT_CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all init containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no uid is specified.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.run_as_group",
        container_field(INIT_CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.eff_run_as_group",
        container_effective(INIT_CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all init containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no gid is specified.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.proc_mount",
        container_field(INIT_CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount type for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.add_capabilities",
        container_field(INIT_CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, the capabilities added for all init containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.initContainers.host_port",
        container_host_ports(INIT_CONTAINERS),
        "When the request object refers to a pod, all init containers hostPort values.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.name",
        container_field(EPHEMERAL_CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the ephemeral containers names.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.image",
        container_images(EPHEMERAL_CONTAINERS),
        "When the request object refers to a pod, the ephemeral containers images.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.image.repository",
        container_images(EPHEMERAL_CONTAINERS, repository=True),
        "The same as ka.req.pod.ephemeralContainers.image, but only the repository part "
        "(e.g. falcosecurity/falco).",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.command",
        container_joined(EPHEMERAL_CONTAINERS, "command"),
        "When the request object refers to a pod, the ephemeral containers commands.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.args",
        container_joined(EPHEMERAL_CONTAINERS, "args"),
        "When the request object refers to a pod, the ephemeral containers args.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.privileged",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.allow_privilege_escalation",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.read_only_fs",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.run_as_user",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.eff_run_as_user",
        container_effective(EPHEMERAL_CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all ephemeral containers. This combines information from both the pod and "
        "container security contexts and uses 0 if no uid is specified.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.run_as_group",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.eff_run_as_group",
        container_effective(EPHEMERAL_CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all ephemeral containers. This combines information from both the pod and "
        "container security contexts and uses 0 if no gid is specified.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.proc_mount",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount type for all ephemeral containers.",
        INDEXED_LIST,
    ),
    _field(
        "ka.req.pod.ephemeralContainers.add_capabilities",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, the capabilities added for all "
        "ephemeral containers.",
        INDEXED_LIST,
    ),
)


@cache
def fields_json() -> str:
    """The JSON array `plugin_get_fields` returns."""
    return json.dumps([f.info() for f in FIELDS], separators=(",", ":"))


def compile_field(field_id: int, arg: Arg) -> Extract:
    """The extractor of field `field_id` for one argument (an int index, a str key, None)."""
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


def compile_all(requests: Sequence[tuple[int, Arg]]) -> Callable[[object], list]:
    """One function for many (field id, argument) pairs, for a caller that wants them all
    from every event (the plugin does): the list of each pair's result, in order: None, a
    list of strings, or the exception the pair's closure raised.

    Same results as calling each `compile_field` closure; faster because key-path fields
    are inlined and share their lookups (`objectRef` is read once for all its fields).
    """
    closures: list[Extract] = []
    inline: list[tuple[str, ...] | None] = []  # the key path of a field to inline
    for field_id, arg in requests:
        try:
            closures.append(compile_field(field_id, arg))
            inline.append(getattr(FIELDS[field_id].build, "key_path", None))
        except ExtractError as exc:
            closures.append(_raising(exc))
            inline.append(None)
    env: dict[str, object] = {"MISSING": MISSING, "marshal": marshal}
    temps: dict[tuple[str, ...], str] = {}
    lookups: list[str] = []

    def temp(path: tuple[str, ...]) -> str:
        if path not in temps:
            name = temps[path] = f"t{len(temps)}"
            if len(path) == 1:
                lookups.append(f"    {name} = get({path[0]!r}, MISSING)")
            else:
                up = temp(path[:-1])
                lookups.append(f"    {name} = {up}.get({path[-1]!r}, MISSING) "
                               f"if {up}.__class__ is dict else MISSING")
        return temps[path]

    results: list[str] = []
    calls: list[str] = []
    for i, (closure, path) in enumerate(zip(closures, inline, strict=True)):
        if path is not None:
            v = temp(path)
            results.append(f"[{v}] if {v}.__class__ is str else None if {v} is MISSING "
                           f"else [marshal({v})]")
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
        *lookups,
        *calls,
        "    return [" + ", ".join(results) + "]",
    ])
    env["each"] = lambda event: [_outcome(c, event) for c in closures]
    exec(compile(source, "<extractor.fields.compile_all>", "exec"), env)
    return env["run_all"]  # type: ignore[return-value]  # built by exec() above


def _raising(exc: Exception) -> Extract:
    def fail(_event: object) -> list[str] | None:
        raise exc

    return fail


def _outcome(closure: Extract, event: object) -> list[str] | Exception | None:
    try:
        return closure(event)
    except Exception as exc:
        return exc


# --- docs --------------------------------------------------------------------------------

MARKER = "<!-- README-PLUGIN-FIELDS -->"


def markdown_table() -> str:
    """The fields table of docs/fields.md, between its two markers."""
    rows = [MARKER, "| NAME | TYPE | ARG | DESCRIPTION |", "|------|------|-----|-------------|"]
    for f in FIELDS:
        kind = "Index" if f.arg_index else "Key" if f.arg_key else "None"
        if f.arg_required:
            kind += ", Required"
        ftype = f"{f.type} (list)" if f.is_list else f.type
        desc = f.desc.strip().replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{ftype}` | {kind} | {desc} |")
    rows.append(MARKER)
    return "\n".join(rows) + "\n"


def _main(argv: list[str]) -> int:
    """`--markdown` prints the table; `--markdown FILE` rewrites it in place in FILE."""
    if not argv or argv[0] != "--markdown" or len(argv) > 2:
        print("usage: python -m extractor.fields --markdown [FILE]", file=sys.stderr)
        return 2
    if len(argv) == 1:
        sys.stdout.write(markdown_table())
        return 0
    with open(argv[1], encoding="utf-8") as doc:
        before, _, rest = doc.read().partition(MARKER)
    _, _, after = rest.partition(MARKER)
    with open(argv[1], "w", encoding="utf-8") as doc:
        doc.write(before + markdown_table() + after.removeprefix("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
