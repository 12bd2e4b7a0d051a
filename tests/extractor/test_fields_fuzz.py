"""Every compiled field is total over arbitrary JSON: a value, None, or `ExtractError`."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.fields.table import FIELDS, ExtractError, compile_field

# the keys the fields look for, so that generated documents reach deep into their paths
VOCABULARY = [
    "auditID", "annotations", "authorization.k8s.io/decision", "cluster_name", "user",
    "username", "groups", "requestURI", "objectRef", "resource", "subresource", "name",
    "namespace", "kind", "requestObject", "responseObject", "metadata", "responseStatus",
    "code", "roleRef", "subjects", "data", "rules", "verbs", "resources", "apiGroups",
    "sourceIPs", "spec", "containers", "initContainers", "ephemeralContainers", "image",
    "args", "command", "ports", "hostPort", "containerPort", "securityContext",
    "privileged", "runAsUser", "runAsGroup", "capabilities", "add", "volumes", "hostPath",
    "path", "flexVolume", "driver", "hostNetwork", "type",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["pods", "User", "ServiceAccount", "/etc", "/proc/1", "a:b@c", "/?x=%zz"])
)
keys = st.sampled_from(VOCABULARY) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)
audit_events = st.dictionaries(keys, json_values, max_size=10).map(lambda d: {"auditID": "a", **d})

ARGS = [None, 0, 1, 7, "", "x", "/etc", "/proc*", "*", "watch"]
EXTRACTORS = []
for field_id, spec in enumerate(FIELDS):
    for arg in ARGS:
        with contextlib.suppress(ExtractError):  # not an argument this field takes
            EXTRACTORS.append((spec.name, arg, compile_field(field_id, arg)))


def check_all(event: object) -> None:
    for _name, _arg, extract in EXTRACTORS:
        try:
            result = extract(event)
        except ExtractError:
            continue
        assert result is None or (
            isinstance(result, list) and result and all(isinstance(s, str) for s in result)
        )


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_value(event: object) -> None:
    check_all(event)


@settings(max_examples=500, deadline=None)
@given(audit_events)
def test_audit_shaped_events(event: dict) -> None:
    # only what a JSON parser can produce: orjson round trip drops nothing we rely on
    check_all(orjson.loads(orjson.dumps(event)))


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("ka.uri.param", None),
        ("ka.uri.param", 0),
        ("ka.verb", "x"),
        ("ka.verb", 0),
        ("ka.sourceips", "x"),
        ("ka.sourceips", -1),
        ("ka.sourceips", True),
    ],
)
def test_invalid_arguments_are_rejected(name: str, arg: object) -> None:
    field_id = next(i for i, f in enumerate(FIELDS) if f.name == name)
    with pytest.raises(ExtractError):
        compile_field(field_id, arg)  # type: ignore[arg-type]


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ExtractError):
        compile_field(len(FIELDS), None)


def test_deep_nesting_fails_cleanly() -> None:
    deep: object = "x"
    for _ in range(1000):
        deep = [deep]
    event = {"auditID": "a", "requestObject": {"data": deep, "spec": {"volumes": deep}}}
    check_all(event)
