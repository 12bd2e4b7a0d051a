// k8saudit-aks pipeline: AKS kube-audit -> Event Hubs -> Function (Flex Consumption) -> Storage
// queue -> Falco with the k8saudit-aks plugin. Deploy into a resource group:
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
targetScope = 'resourceGroup'

// ---- Parameters --------------------------------------------------------------------------

@description('Region of every resource. Must be the AKS clusters\' region: diagnostic settings stream only to an Event Hubs namespace in the same region.')
param location string = resourceGroup().location

@description('Prefix of every resource name (lower-case letters, digits, hyphens).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'k8saudit'

@description('Tags applied to every resource.')
param tags object = {}

@description('AKS clusters to audit: names (in this resource group) or full resource IDs (any resource group or subscription of the tenant).')
@minLength(1)
param aksClusters array

@description('AKS diagnostic log categories streamed to the Event Hub (the function accepts the kube-audit ones): kube-audit-admin (writes only, the cheap default), kube-audit (also reads; a superset of kube-audit-admin, so do not enable both), guard (Entra ID/RBAC authz decisions).')
@allowed([
  'kube-audit-admin'
  'kube-audit'
  'guard'
])
param auditCategories array = [
  'kube-audit-admin'
]

@description('Name of the diagnostic setting created on each cluster.')
param diagnosticSettingName string = '${namePrefix}-to-eventhub'

@description('Event Hubs Standard throughput units (1 TU: 1 MB/s or 1000 events/s in).')
@minValue(1)
@maxValue(40)
param eventHubCapacity int = 1

@description('Hub partitions: the most function instances that read in parallel. Cannot change later on Standard.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Days the Event Hub keeps events: how long an outage of the function can last without loss.')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 1

@description('Rights of the namespace SAS rule the AKS diagnostic settings send with. Azure Monitor documents Manage, Send and Listen for streaming to Event Hubs; the rule is used by nothing else.')
@allowed([
  'Send'
  'Listen'
  'Manage'
])
param diagnosticsRuleRights array = [
  'Manage'
  'Send'
  'Listen'
]

@description('Storage queue the function fills and Falco drains.')
param queueName string = 'k8saudit'
@description('Queue receiving what neither side can deliver (dead letters).')
param deadLetterQueueName string = 'k8saudit-deadletter'
@description('Blob container for events too large for a queue message, and large dead letters.')
param claimCheckContainer string = 'k8saudit-claims'

@description('Steady rate (audit events per second) each function worker forwards; 0 turns the limit off.')
@minValue(0)
param rateLimitEventsPerSecond int = 1000

@description('Burst size of the function\'s rate limiter.')
@minValue(1)
param rateLimitBurst int = 2000

@description('Most Flex Consumption instances the function scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance (MB).')
param instanceMemoryMB int = 2048

@description('The AKS cluster\'s OIDC issuer URL: az aks show -g <rg> -n <cluster> --query oidcIssuerProfile.issuerUrl -o tsv')
param oidcIssuerUrl string

@description('Namespace Falco runs in.')
param falcoNamespace string = 'falco'

@description('Service account of the Falco pods (the Helm chart names it after the release).')
param falcoServiceAccount string = 'falco'

@description('Days the Log Analytics workspace keeps the function\'s logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Let the Functions host persist diagnostic events (adds Table Data Contributor on host storage).')
param enableHostDiagnosticEvents bool = false

// Alerts (docs/alerts.md): on by default; they notify the action group created here.
@description('Create the alert rules on the function\'s metrics (no event reaches the queue, failing invocations, dead letters, a cluster gone silent, a queue Falco does not drain).')
param enableAlerts bool = true

@description('Email addresses the alerts notify.')
param alertEmails array = []

@description('HTTPS webhook the alerts post the common alert schema to (empty: none).')
param alertWebhookUrl string = ''

@description('Minutes without a successful ingest invocation before alerting (a log alert window: Azure takes these values only).')
@allowed([
  5
  10
  15
  30
  45
  60
  120
  180
  240
  300
  360
])
param alertIngestSilenceMinutes int = 15

@description('Failed ingest invocations within alertIngestSilenceMinutes before alerting.')
@minValue(1)
param alertIngestFailures int = 3

@description('Minutes a cluster that was sending may go without a delivered audit event.')
@minValue(5)
@maxValue(1440)
param alertClusterSilenceMinutes int = 30

@description('Hours back a cluster counts as one that was sending (a log alert window: Azure takes these values only).')
@allowed([
  1
  2
  3
  4
  5
  6
  24
  48
])
param alertClusterLookbackHours int = 6

@description('Minutes the queue\'s oldest message may wait before alerting (Falco is not keeping up).')
@minValue(5)
@maxValue(1440)
param alertQueueAgeMinutes int = 15

@description('Resource id of the Azure Monitor workspace the clusters\' managed Prometheus writes to: set it to create the Falco-side alert rule group (empty: none).')
param azureMonitorWorkspaceId string = ''

// ---- Naming ------------------------------------------------------------------------------

var token = uniqueString(resourceGroup().id, namePrefix)
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var names = {
  eventHubNamespace: '${namePrefix}-ehns-${token}'
  eventHub: 'kube-audit'
  consumerGroup: 'k8saudit-function'
  diagnosticsRule: 'diagnostics-send'
  // Two accounts: the host's Blob Data Owner must not reach the pipeline's claim-check blobs.
  hostStorage: take('st${compactPrefix}h${token}', 24)
  dataStorage: take('st${compactPrefix}q${token}', 24)
  deploymentContainer: 'app-package'
  functionPlan: '${namePrefix}-plan-${token}'
  functionApp: '${namePrefix}-func-${token}'
  functionIdentity: '${namePrefix}-id-function'
  falcoIdentity: '${namePrefix}-id-falco'
  workspace: '${namePrefix}-log-${token}'
  appInsights: '${namePrefix}-appi-${token}'
}

// A cluster is a name in this resource group or /subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.ContainerService/managedClusters/<n>.
var clusters = [for cluster in aksClusters: {
  name: last(split(cluster, '/'))
  subscriptionId: contains(cluster, '/') ? split(cluster, '/')[2] : subscription().subscriptionId
  resourceGroup: contains(cluster, '/') ? split(cluster, '/')[4] : resourceGroup().name
}]

// guard records are klog text, not audit events: the function accepts only the audit categories.
var functionAuditCategories = filter(auditCategories, category => startsWith(category, 'kube-audit'))

// ---- Resources ---------------------------------------------------------------------------

module eventHub 'modules/eventhub.bicep' = {
  name: 'eventhub'
  params: {
    location: location
    tags: tags
    namespaceName: names.eventHubNamespace
    eventHubName: names.eventHub
    consumerGroupName: names.consumerGroup
    diagnosticsRuleName: names.diagnosticsRule
    capacity: eventHubCapacity
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
    diagnosticsRuleRights: diagnosticsRuleRights
  }
}

module auditDiagnostics 'modules/aks-diagnostics.bicep' = [for (cluster, i) in clusters: {
  name: 'aks-diagnostics-${i}'
  scope: resourceGroup(cluster.subscriptionId, cluster.resourceGroup)
  params: {
    clusterName: cluster.name
    settingName: diagnosticSettingName
    categories: auditCategories
    eventHubAuthorizationRuleId: eventHub.outputs.diagnosticsRuleId
    eventHubName: eventHub.outputs.hubName
  }
}]

module hostStorage 'modules/storage.bicep' = {
  name: 'storage-host'
  params: {
    location: location
    tags: tags
    name: names.hostStorage
    containerNames: [
      names.deploymentContainer
    ]
  }
}

module dataStorage 'modules/storage.bicep' = {
  name: 'storage-data'
  params: {
    location: location
    tags: tags
    name: names.dataStorage
    queueNames: [
      queueName
      deadLetterQueueName
    ]
    containerNames: [
      claimCheckContainer
    ]
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    retentionInDays: logRetentionDays
  }
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  params: {
    location: location
    tags: tags
    functionIdentityName: names.functionIdentity
    falcoIdentityName: names.falcoIdentity
    oidcIssuerUrl: oidcIssuerUrl
    falcoNamespace: falcoNamespace
    falcoServiceAccount: falcoServiceAccount
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    functionPrincipalId: identities.outputs.functionPrincipalId
    falcoPrincipalId: identities.outputs.falcoPrincipalId
    eventHubNamespaceName: eventHub.outputs.namespaceName
    eventHubName: eventHub.outputs.hubName
    hostStorageName: hostStorage.outputs.name
    dataStorageName: dataStorage.outputs.name
    queueName: queueName
    deadLetterQueueName: deadLetterQueueName
    claimCheckContainer: claimCheckContainer
    appInsightsName: monitoring.outputs.appInsightsName
    enableHostDiagnosticEvents: enableHostDiagnosticEvents
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  params: {
    location: location
    tags: tags
    planName: names.functionPlan
    appName: names.functionApp
    identityId: identities.outputs.functionIdentityId
    identityClientId: identities.outputs.functionClientId
    appInsightsName: monitoring.outputs.appInsightsName
    hostBlobEndpoint: hostStorage.outputs.blobEndpoint
    hostQueueEndpoint: hostStorage.outputs.queueEndpoint
    hostTableEndpoint: hostStorage.outputs.tableEndpoint
    deploymentContainerName: names.deploymentContainer
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    eventHubFullyQualifiedNamespace: eventHub.outputs.fullyQualifiedNamespace
    eventHubName: eventHub.outputs.hubName
    eventHubConsumerGroup: eventHub.outputs.consumerGroupName
    auditCategories: functionAuditCategories
    rateLimitEventsPerSecond: rateLimitEventsPerSecond
    rateLimitBurst: rateLimitBurst
    queueAccountUrl: dataStorage.outputs.queueEndpoint
    queueName: queueName
    deadLetterQueueName: deadLetterQueueName
    claimCheckAccountUrl: dataStorage.outputs.blobEndpoint
    claimCheckContainer: claimCheckContainer
  }
  // Start the host only once it may read its storage and the hub.
  dependsOn: [
    rbac
  ]
}

module alerts 'modules/alerts.bicep' = if (enableAlerts) {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    workspaceId: monitoring.outputs.workspaceId
    emails: alertEmails
    webhookUrl: alertWebhookUrl
    ingestSilenceMinutes: alertIngestSilenceMinutes
    ingestFailures: alertIngestFailures
    clusterSilenceMinutes: alertClusterSilenceMinutes
    clusterLookbackHours: alertClusterLookbackHours
    queueAgeMinutes: alertQueueAgeMinutes
  }
}

module prometheusAlerts 'modules/prometheus-alerts.bicep' = if (enableAlerts && !empty(azureMonitorWorkspaceId)) {
  name: 'prometheus-alerts'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    azureMonitorWorkspaceId: azureMonitorWorkspaceId
    actionGroupId: alerts.outputs.actionGroupId
  }
}

// ---- Outputs (Falco Helm values; nothing secret) -------------------------------------------

output queueAccountUrl string = dataStorage.outputs.queueEndpoint
output queueName string = queueName
output queueUrl string = '${dataStorage.outputs.queueEndpoint}${queueName}'
output deadLetterQueueName string = deadLetterQueueName
output deadLetterQueueUrl string = '${dataStorage.outputs.queueEndpoint}${deadLetterQueueName}'
output claimCheckAccountUrl string = dataStorage.outputs.blobEndpoint
output claimCheckContainer string = claimCheckContainer
output claimCheckContainerUrl string = '${dataStorage.outputs.blobEndpoint}${claimCheckContainer}'
output falcoClientId string = identities.outputs.falcoClientId
output tenantId string = tenant().tenantId
output functionAppName string = functionApp.outputs.name
