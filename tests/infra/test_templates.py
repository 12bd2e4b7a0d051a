"""Every template parses; properties that hold across all of them."""

from __future__ import annotations

import json
import re

from tests.infra.bicep import body, walk
from tests.infra.conftest import BICEP_DIR, bicep_files

# Newest stable API version the templates may not fall below.
API_FLOOR = "2023-01-01"
# Types whose newest stable version predates the floor: pinned exactly, so they cannot drift.
API_PINNED = {
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    # diagnosticSettings has never had a GA version after 2016-09-01.
    "Microsoft.Insights/diagnosticSettings": "2021-05-01-preview",
    "Microsoft.Insights/components": "2020-02-02",
}
SECRET_WORDS = re.compile(r"key|secret|connectionstring|password|sas|token", re.IGNORECASE)
SECRET_CALLS = re.compile(
    r"listKeys|listConnectionStrings|listAccountSas|listServiceSas|listCredentials|"
    r"ConnectionString|primaryKey|secondaryKey", re.IGNORECASE,
)
FILES = {
    "main.bicep", "modules/aks-diagnostics.bicep", "modules/eventhub.bicep",
    "modules/function-app.bicep", "modules/identities.bicep", "modules/monitoring.bicep",
    "modules/rbac.bicep", "modules/storage.bicep", "modules/alerts.bicep",
    "modules/prometheus-alerts.bicep",
}


def all_resources(templates):
    for path, template in templates.items():
        for name, resource in template.get("resources", {}).items():
            yield path, name, resource


def test_every_bicep_file_parses(templates):
    assert set(templates) == {str(p.relative_to(BICEP_DIR)) for p in bicep_files()}
    assert set(templates) == FILES
    for path, template in templates.items():
        assert template.get("resources") or template.get("modules"), path


def test_main_is_a_table_of_contents(templates):
    main = templates["main.bicep"]
    assert not main.get("resources"), "main.bicep declares modules only"
    used = {m["detail"]["path"] for m in main["modules"].values()}
    assert used == {p for p in FILES if p.startswith("modules/")}


def test_api_versions_are_current(templates):
    for path, name, resource in all_resources(templates):
        kind, version = resource["type"], resource["api_version"]
        if kind in API_PINNED:
            assert version == API_PINNED[kind], f"{path}:{name} {kind}@{version}"
        else:
            assert version >= API_FLOOR, f"{path}:{name} {kind}@{version} < {API_FLOOR}"
            assert "preview" not in version, f"{path}:{name} {kind}@{version}"


def test_outputs_carry_no_secrets(templates):
    for path, template in templates.items():
        for name, output in template.get("outputs", {}).items():
            assert not SECRET_WORDS.search(name), f"{path}: output {name}"
            value = json.dumps(output.get("value"))
            assert not SECRET_CALLS.search(value), f"{path}: output {name} = {value}"


def test_no_secret_is_read_anywhere(templates):
    """No listKeys()/connection strings at all, except App Insights' (not a secret, local
    auth off) which function-app.bicep reads where it sets the app setting."""
    for path, template in templates.items():
        for node in walk(template):
            if isinstance(node, str) and SECRET_CALLS.search(node):
                allowed = path == "modules/function-app.bicep" and node in (
                    "ConnectionString", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                )
                assert allowed, f"{path}: {node}"
            if isinstance(node, dict) and "function" in node:
                kind = node["function"]["type"].lower()
                assert not kind.startswith("list"), f"{path}: {kind}()"


def test_role_assignments_live_in_rbac_only(templates):
    for path, name, resource in all_resources(templates):
        if resource["type"] == "Microsoft.Authorization/roleAssignments":
            assert path == "modules/rbac.bicep", f"{path}:{name}"


def test_tags_and_location_reach_every_module(templates):
    main = templates["main.bicep"]
    for name, module in main["modules"].items():
        params = body(module)["params"]
        if "location" in params:
            assert params["location"] == "location", name
            assert params["tags"] == "tags", name
