"""Least privilege: exactly these role assignments, each at exactly this scope."""

from __future__ import annotations

from tests.infra.bicep import body, condition, ref

RBAC = "modules/rbac.bicep"

# Azure built-in role definition IDs (learn.microsoft.com, "Azure built-in roles").
BUILT_IN_ROLES = {
    "a638d3c7-ab3a-418d-83e6-5f17a39d4fde": "Azure Event Hubs Data Receiver",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

QUEUE = ("Microsoft.Storage/storageAccounts/queueServices/queues", "queueName")
DEAD_LETTER = ("Microsoft.Storage/storageAccounts/queueServices/queues", "deadLetterQueueName")
CLAIMS = ("Microsoft.Storage/storageAccounts/blobServices/containers", "claimCheckContainer")
HUB = ("Microsoft.EventHub/namespaces/eventhubs", "eventHubName")
HOST_STORAGE = ("Microsoft.Storage/storageAccounts", "hostStorageName")
APP_INSIGHTS = ("Microsoft.Insights/components", "appInsightsName")

# (principal, role, (scope type, scope name param), condition)
EXPECTED = {
    ("functionPrincipalId", "Azure Event Hubs Data Receiver", HUB, None),
    ("functionPrincipalId", "Storage Queue Data Message Sender", QUEUE, None),
    ("functionPrincipalId", "Storage Queue Data Message Sender", DEAD_LETTER, None),
    # The watcher: queue properties and a peek at the head, of both queues.
    ("functionPrincipalId", "Storage Queue Data Reader", QUEUE, None),
    ("functionPrincipalId", "Storage Queue Data Reader", DEAD_LETTER, None),
    ("functionPrincipalId", "Storage Blob Data Contributor", CLAIMS, None),
    # Functions host on its own storage account.
    ("functionPrincipalId", "Storage Blob Data Owner", HOST_STORAGE, None),
    ("functionPrincipalId", "Storage Table Data Contributor", HOST_STORAGE,
     "enableHostDiagnosticEvents"),
    ("functionPrincipalId", "Monitoring Metrics Publisher", APP_INSIGHTS, None),
    ("falcoPrincipalId", "Storage Queue Data Message Processor", QUEUE, None),
    ("falcoPrincipalId", "Storage Queue Data Message Sender", DEAD_LETTER, None),
    ("falcoPrincipalId", "Storage Blob Data Contributor", CLAIMS, None),
}


def assignments(templates):
    rbac = templates[RBAC]
    guids = {name: var["value"] for name, var in rbac["variables"].items()}
    resources = rbac["resources"]
    found = set()
    for name, resource in resources.items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        b = body(resource)
        props = b["properties"]
        role_fn = props["roleDefinitionId"]["function"]
        assert role_fn["type"] == "subscription_resource_id", name
        assert role_fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role_var = role_fn["parameters"]["resource_name_1"]
        role = BUILT_IN_ROLES[guids[role_var]]
        assert props["principalType"] == "ServicePrincipal", name
        scope = resources[b["scope"]]
        assert scope["existing"] is True, name
        scope_key = (scope["type"], body(scope)["name"])
        # Deterministic, unique name: scope + principal + role.
        name_args = b["name"]["function"]["parameters"]
        assert b["name"]["function"]["type"] == "guid", name
        assert [ref(name_args["base_string"]), name_args["extra_string_1"],
                name_args["extra_string_2"]] == [f"{b['scope']}.id", props["principalId"],
                                                  role_var], name
        found.add((props["principalId"], role, scope_key, condition(resource)))
    return found


def test_role_guids_are_the_built_in_roles(templates):
    guids = {var["value"] for var in templates[RBAC]["variables"].values()}
    assert guids <= set(BUILT_IN_ROLES), guids - set(BUILT_IN_ROLES)


def test_exactly_the_needed_role_assignments(templates):
    found = assignments(templates)
    assert found == EXPECTED, {"unexpected": found - EXPECTED, "missing": EXPECTED - found}


def test_scopes_resolve_to_the_right_accounts(templates):
    """The queue, dead-letter queue and claims container are in the data account; the
    host's Blob Data Owner is on the host account only."""
    resources = templates[RBAC]["resources"]

    def chain(symbol):
        names = []
        while symbol:
            b = body(resources[symbol])
            names.append(b["name"])
            symbol = b.get("parent")
        return names

    assert chain("queue") == ["queueName", "default", "dataStorageName"]
    assert chain("deadLetterQueue") == ["deadLetterQueueName", "default", "dataStorageName"]
    assert chain("claims") == ["claimCheckContainer", "default", "dataStorageName"]
    assert chain("hub") == ["eventHubName", "eventHubNamespaceName"]
    assert chain("hostStorage") == ["hostStorageName"]


def test_principals_are_wired_from_the_identities(templates):
    main = templates["main.bicep"]
    params = body(main["modules"]["rbac"])["params"]
    assert ref(params["functionPrincipalId"]) == "identities.outputs.functionPrincipalId"
    assert ref(params["falcoPrincipalId"]) == "identities.outputs.falcoPrincipalId"
    assert ref(params["hostStorageName"]) == "hostStorage.outputs.name"
    assert ref(params["dataStorageName"]) == "dataStorage.outputs.name"
    assert params["queueName"] == "queueName"
    assert params["deadLetterQueueName"] == "deadLetterQueueName"
    assert params["claimCheckContainer"] == "claimCheckContainer"
    assert main["parameters"]["enableHostDiagnosticEvents"]["default"] is False
    # The function's app settings use the identity whose principal gets these roles.
    fn = body(main["modules"]["functionApp"])["params"]
    assert ref(fn["identityId"]) == "identities.outputs.functionIdentityId"
    assert ref(fn["identityClientId"]) == "identities.outputs.functionClientId"


def test_host_and_pipeline_storage_are_separate_accounts(templates):
    names = templates["main.bicep"]["variables"]["names"]["value"]
    assert names["hostStorage"] != names["dataStorage"]
