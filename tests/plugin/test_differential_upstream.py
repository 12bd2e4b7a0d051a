"""Every `ka.*` field, this plugin against upstream k8saudit 0.18.0, on generated events.

Both libraries are driven through their C ABI by the same host (build/falco_host), one field
per call as libsinsp does, on audit events hypothesis builds along the key paths the fields
read: wrong JSON types, missing and extra keys, empty and nested containers, unicode, long
strings. Every difference must be a deliberate one of docs/differences.md. Needs the
upstream plugin beside Falco (`../shared/tools/falco/setup.sh` lays it out); skipped
otherwise.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import falco, host
from tests.support.golden import expected_source_ips, golden_keys

# Upstream crashes the process on some shapes of these (docs/differences.md): not asked.
CRASHING = {"ka.req.pod.volumes.volume_type"}


@cache
def upstream() -> Path:
    binary = falco.find_falco()
    lib = binary.resolve().parent.parent / "plugins" / "libk8saudit.so" if binary else None
    if lib is None or not lib.is_file():
        pytest.skip("upstream libk8saudit.so not found beside Falco (FALCO_BIN)")
    return lib


@cache
def keys() -> list[str]:
    every = dict.fromkeys(golden_keys("generated") + golden_keys("falco-traces"))
    return [k for k in every if k.partition("[")[0] not in CRASHING]


SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.text(max_size=12) | st.sampled_from(["", "true", "/etc", "*", "ns-ü", "0"]))
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def shaped(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the expected shape, sometimes anything."""
    return st.one_of(value, value, value, ANY)


CONTAINER = st.fixed_dictionaries({}, optional={
    "name": shaped(st.text(max_size=10)), "image": shaped(st.sampled_from(
        ["nginx", "reg:5000/app:1", "docker.io/library/alpine:3.20", ""])),
    "args": shaped(st.lists(st.text(max_size=6), max_size=3)),
    "command": shaped(st.lists(st.text(max_size=6), max_size=3)),
    "securityContext": shaped(st.fixed_dictionaries({}, optional={
        "privileged": shaped(st.booleans()), "runAsUser": shaped(st.integers(0, 2000)),
        "readOnlyRootFilesystem": shaped(st.booleans()),
        "allowPrivilegeEscalation": shaped(st.booleans()),
        "capabilities": shaped(st.fixed_dictionaries({}, optional={
            "add": shaped(st.lists(st.sampled_from(["SYS_ADMIN", "NET_RAW"]), max_size=2))}))})),
    "ports": shaped(st.lists(st.fixed_dictionaries({}, optional={
        "hostPort": shaped(st.integers(0, 70000)),
        "containerPort": shaped(st.integers(0, 70000))}), max_size=2)),
})
SPEC = st.fixed_dictionaries({}, optional={
    "containers": shaped(st.lists(CONTAINER, max_size=3)),
    "initContainers": shaped(st.lists(CONTAINER, max_size=2)),
    "hostNetwork": shaped(st.booleans()), "hostPID": shaped(st.booleans()),
    "hostIPC": shaped(st.booleans()),
    "volumes": shaped(st.lists(st.fixed_dictionaries({}, optional={
        "name": shaped(st.text(max_size=5)),
        "hostPath": shaped(st.fixed_dictionaries({}, optional={
            "path": shaped(st.sampled_from(["/", "/etc", "/proc/1", "/var/run/docker.sock"]))
        }))}), max_size=3)),
    "securityContext": shaped(st.fixed_dictionaries({}, optional={
        "runAsUser": shaped(st.integers(0, 2000))})),
    "ports": shaped(st.lists(st.fixed_dictionaries({}, optional={
        "nodePort": shaped(st.integers(0, 40000)), "port": shaped(st.integers(0, 70000))}),
        max_size=2)),
    "type": shaped(st.sampled_from(["NodePort", "ClusterIP"])),
})
REQUEST = st.fixed_dictionaries({}, optional={
    "kind": shaped(st.sampled_from(["Pod", "ConfigMap", "ClusterRole", "RoleBinding"])),
    "metadata": shaped(st.fixed_dictionaries({}, optional={
        "name": shaped(st.text(max_size=8)), "namespace": shaped(st.text(max_size=8))})),
    "spec": shaped(SPEC),
    "data": shaped(st.dictionaries(st.text(max_size=6), st.text(max_size=12), max_size=2)),
    "rules": shaped(st.lists(st.fixed_dictionaries({}, optional={
        "verbs": shaped(st.lists(st.sampled_from(["get", "*", "create"]), max_size=2)),
        "resources": shaped(st.lists(st.sampled_from(["pods", "pods/exec", "*"]),
                                     max_size=2))}), max_size=2)),
    "roleRef": shaped(st.fixed_dictionaries({}, optional={
        "name": shaped(st.sampled_from(["cluster-admin", "view"]))})),
    "subjects": shaped(st.lists(st.fixed_dictionaries({}, optional={
        "kind": shaped(st.sampled_from(["User", "ServiceAccount"])),
        "name": shaped(st.text(max_size=6))}), max_size=2)),
})
EVENTS = st.fixed_dictionaries(
    {"kind": st.just("Event"), "auditID": shaped(st.text(max_size=8))},
    optional={
        "stage": shaped(st.sampled_from(["ResponseComplete", "ResponseStarted"])),
        "verb": shaped(st.sampled_from(["create", "get", "update", "delete", ""])),
        "requestURI": shaped(st.sampled_from([
            "/api/v1/namespaces/default/pods/p/exec?command=sh&container=c",
            "/api/v1/pods?watch=true&timeout=5m", "/apis?x=%zz", "/healthz", ""])),
        "user": shaped(st.fixed_dictionaries({}, optional={
            "username": shaped(st.text(max_size=10)),
            "groups": shaped(st.lists(st.text(max_size=6), max_size=2))})),
        "impersonatedUser": shaped(st.fixed_dictionaries({}, optional={
            "username": shaped(st.text(max_size=6))})),
        "sourceIPs": shaped(st.lists(st.sampled_from(["10.0.0.1", "::1"]), max_size=2)),
        "userAgent": shaped(st.text(max_size=10)),
        "objectRef": shaped(st.fixed_dictionaries({}, optional={
            "resource": shaped(st.sampled_from(["pods", "configmaps", "secrets"])),
            "subresource": shaped(st.sampled_from(["exec", "attach", ""])),
            "namespace": shaped(st.text(max_size=6)), "name": shaped(st.text(max_size=6))})),
        "responseStatus": shaped(st.fixed_dictionaries({}, optional={
            "code": shaped(st.integers(100, 599)), "reason": shaped(st.text(max_size=6))})),
        "requestObject": shaped(REQUEST),
        "responseObject": shaped(st.fixed_dictionaries({}, optional={
            "metadata": shaped(st.fixed_dictionaries({}, optional={
                "name": shaped(st.text(max_size=6))}))})),
        "annotations": shaped(st.dictionaries(st.sampled_from([
            "authorization.k8s.io/decision", "authorization.k8s.io/reason", "cluster_name",
            "x"]), st.text(max_size=8), max_size=3)),
    },
)


def api_server_json(event: dict[str, Any]) -> bytes:
    """The event as the API server writes it (Go encoding/json): `<`, `>`, `&`, U+2028 and
    U+2029 escaped. Upstream echoes objects' source text, so only this spelling compares
    (docs/differences.md, named exceptions)."""
    text = orjson.dumps(event)
    for raw, escaped in ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
                         ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029")):
        text = text.replace(raw, escaped)
    return text


def extract(lib: Path, events: list[dict[str, Any]], tmp: Path) -> list[dict]:
    path = tmp / "events.jsonl"
    path.write_bytes(b"\n".join(api_server_json(e) for e in events) + b"\n")
    return host.extract(lib, path, keys(), config="{}")  # upstream refuses an empty config


# Derandomized: the same examples every run, so CI never depends on a lucky draw; a wider
# search (5,000 events, 1,040,000 answers, 0 differences) is recorded in docs/differences.md.
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(events=st.lists(EVENTS, min_size=20, max_size=40))
def test_every_field_agrees_with_upstream(events: list[dict[str, Any]], tmp_path: Path
                                          ) -> None:
    theirs = extract(upstream(), events, tmp_path)
    ours = extract(host.LIB, events, tmp_path)
    assert len(theirs) == len(ours) == len(events)
    differences = []
    for event, mine, upstream_row in zip(events, ours, theirs, strict=True):
        for key, want in upstream_row["values"].items():
            if key.startswith("ka.sourceips"):  # deliberate: the client addresses
                want = expected_source_ips(int(key[13:-1]) if "[" in key else None, event)
                # values cross the plugin API as C strings: they end at a NUL
                want = [v.split("\0")[0] for v in want] if want else want
            if mine["values"][key] != want:
                differences.append((json.dumps(event)[:300], key, want, mine["values"][key]))
    assert differences == []
