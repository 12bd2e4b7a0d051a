"""Security properties of each resource family."""

from __future__ import annotations

from tests.infra.bicep import app_settings, body, decorator, ref
from tests.infra.conftest import bicep_files
from transport.clients import NO_EXPIRY

FUNCTION_CONTRACT = {
    "EVENTHUB_NAME", "EVENTHUB_CONSUMER_GROUP", "AUDIT_CATEGORIES",
    "rate_limit_events_per_second", "rate_limit_burst", "QUEUE_ACCOUNT_URL", "QUEUE_NAME",
    "DEADLETTER_QUEUE_NAME", "CLAIMCHECK_CONTAINER",
}


def resources_of(template, kind):
    return {n: r for n, r in template.get("resources", {}).items() if r["type"] == kind}


def test_storage_accounts_are_locked_down(templates):
    (account,) = resources_of(templates["modules/storage.bicep"],
                              "Microsoft.Storage/storageAccounts").values()
    props = body(account)["properties"]
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True


def test_containers_are_private(templates):
    storage = templates["modules/storage.bicep"]
    (containers,) = resources_of(
        storage, "Microsoft.Storage/storageAccounts/blobServices/containers").values()
    assert body(containers)["properties"]["publicAccess"] == "None"


def test_no_lifecycle_rule_outlives_a_message(templates):
    """Messages and dead letters never expire (NO_EXPIRY), so no finite lifecycle rule is
    longer than a message's life: none may delete the blobs they name."""
    assert NO_EXPIRY == -1
    for template in templates.values():
        assert not resources_of(
            template, "Microsoft.Storage/storageAccounts/managementPolicies")
    assert "managementPolicies" not in "".join(
        path.read_text() for path in bicep_files())
    main = templates["main.bicep"]
    data = body(main["modules"]["dataStorage"])["params"]
    assert data["queueNames"] == ["queueName", "deadLetterQueueName"]
    assert data["containerNames"] == ["claimCheckContainer"]
    assert "expiringContainers" not in data
    host = body(main["modules"]["hostStorage"])["params"]
    assert [ref(c) for c in host["containerNames"]] == ["names.deploymentContainer"]
    assert "queueNames" not in host


def test_queue_and_container_names_default_to_the_contract(templates):
    params = templates["main.bicep"]["parameters"]
    assert params["queueName"]["default"] == "k8saudit"
    assert params["deadLetterQueueName"]["default"] == "k8saudit-deadletter"
    assert params["claimCheckContainer"]["default"] == "k8saudit-claims"


def test_event_hubs_namespace(templates):
    eh = templates["modules/eventhub.bicep"]
    (ns,) = resources_of(eh, "Microsoft.EventHub/namespaces").values()
    ns_body = body(ns)
    assert ns_body["sku"]["name"] == "Standard"
    assert ns_body["properties"]["minimumTlsVersion"] == "1.2"
    # Diagnostic settings stream with a SAS rule: local auth has to stay on.
    assert ns_body["properties"]["disableLocalAuth"] is False
    (hub,) = resources_of(eh, "Microsoft.EventHub/namespaces/eventhubs").values()
    assert body(hub)["properties"]["partitionCount"] == "partitionCount"
    assert resources_of(eh, "Microsoft.EventHub/namespaces/eventhubs/consumergroups")
    # Namespace-level rule (what diagnostic settings take), with the rights Azure Monitor
    # documents for streaming to Event Hubs.
    (rule,) = resources_of(eh, "Microsoft.EventHub/namespaces/authorizationRules").values()
    assert body(rule)["properties"]["rights"] == "diagnosticsRuleRights"
    assert templates["main.bicep"]["parameters"]["diagnosticsRuleRights"]["default"] == [
        "Manage", "Send", "Listen"]


def test_diagnostic_settings(templates):
    main = templates["main.bicep"]
    categories = main["parameters"]["auditCategories"]
    assert categories["default"] == ["kube-audit-admin"]
    assert set(decorator(categories, "allowed")) == {"kube-audit-admin", "kube-audit", "guard"}

    diag_module = main["modules"]["auditDiagnostics"]
    assert diag_module["config"]["loop_type"]["detail"]["array_name"] == "clusters"
    module_body = body(diag_module)
    # Scoped to each cluster's own subscription and resource group.
    scope = module_body["scope"]["function"]
    assert scope["type"] == "resource_group"
    assert ref(scope["parameters"]["resource_group_name"]) == "cluster.resourceGroup"
    assert ref(scope["parameters"]["subscription_id"]) == "cluster.subscriptionId"
    assert module_body["params"]["categories"] == "auditCategories"
    assert ref(module_body["params"]["eventHubAuthorizationRuleId"]) == (
        "eventHub.outputs.diagnosticsRuleId"
    )

    aks = templates["modules/aks-diagnostics.bicep"]
    (setting,) = resources_of(aks, "Microsoft.Insights/diagnosticSettings").values()
    setting_body = body(setting)
    assert setting_body["scope"] == "cluster"
    assert aks["resources"]["cluster"]["existing"] is True
    logs = setting_body["properties"]["logs"]
    assert logs["loop_type"]["detail"]["array_name"] == "categories"
    assert logs["config"] == {"category": "category", "enabled": True}
    assert "metrics" not in setting_body["properties"]


def test_function_app_is_flex_consumption_python_311(templates):
    fn = templates["modules/function-app.bicep"]
    (plan,) = resources_of(fn, "Microsoft.Web/serverfarms").values()
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["properties"]["reserved"] is True
    (site,) = resources_of(fn, "Microsoft.Web/sites").values()
    site_body = body(site)
    assert site_body["kind"] == "functionapp,linux"
    props = site_body["properties"]
    assert props["httpsOnly"] is True
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    auth = props["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert auth == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert site_body["identity"]["type"] == "UserAssigned"
    basic_auth = resources_of(fn, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {body(p)["name"] for p in basic_auth.values()} == {"ftp", "scm"}
    for policy in basic_auth.values():
        assert body(policy)["properties"]["allow"] is False


def test_function_connects_by_identity(templates):
    (site,) = resources_of(templates["modules/function-app.bicep"], "Microsoft.Web/sites").values()
    settings = app_settings(site)
    assert set(settings) >= FUNCTION_CONTRACT
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["EVENTHUB__credential"] == "managedidentity"
    assert settings["EVENTHUB__clientId"] == "identityClientId"
    assert settings["EVENTHUB__fullyQualifiedNamespace"] == "eventHubFullyQualifiedNamespace"
    # No connection strings with keys; Flex rejects the worker runtime settings.
    for name in ("AzureWebJobsStorage", "EVENTHUB", "FUNCTIONS_WORKER_RUNTIME",
                 "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"):
        assert name not in settings
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    monitoring = templates["modules/monitoring.bicep"]["resources"]["appInsights"]
    assert body(monitoring)["properties"]["DisableLocalAuth"] is True


def test_function_settings_are_wired_from_main(templates):
    params = body(templates["main.bicep"]["modules"]["functionApp"])["params"]
    assert params["queueName"] == "queueName"
    assert params["deadLetterQueueName"] == "deadLetterQueueName"
    assert params["claimCheckContainer"] == "claimCheckContainer"
    assert ref(params["queueAccountUrl"]) == "dataStorage.outputs.queueEndpoint"
    assert ref(params["hostBlobEndpoint"]) == "hostStorage.outputs.blobEndpoint"
    assert params["auditCategories"] == "functionAuditCategories"


def test_falco_federated_credential(templates):
    ids = templates["modules/identities.bicep"]
    (cred,) = resources_of(
        ids, "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    ).values()
    cred_body = body(cred)
    assert cred_body["parent"] == "falcoIdentity"
    assert cred_body["properties"] == {
        "issuer": "oidcIssuerUrl",
        "subject": "system:serviceaccount:${falcoNamespace}:${falcoServiceAccount}",
        "audiences": ["api://AzureADTokenExchange"],
    }
    main_params = body(templates["main.bicep"]["modules"]["identities"])["params"]
    assert main_params["oidcIssuerUrl"] == "oidcIssuerUrl"
    assert templates["main.bicep"]["parameters"]["oidcIssuerUrl"]["default"] is None


def test_outputs_for_falco(templates):
    outputs = templates["main.bicep"]["outputs"]
    for name in ("queueUrl", "deadLetterQueueUrl", "claimCheckContainerUrl", "falcoClientId",
                 "functionAppName", "queueAccountUrl", "claimCheckAccountUrl"):
        assert name in outputs, name
    assert ref(outputs["falcoClientId"]["value"]) == "identities.outputs.falcoClientId"
    assert outputs["queueUrl"]["value"] == "${dataStorage.outputs.queueEndpoint}${queueName}"
