// Every role assignment of the pipeline, one per need, each at the narrowest scope.
@description('Principal id of the function\'s identity.')
param functionPrincipalId string
@description('Principal id of Falco\'s identity.')
param falcoPrincipalId string
@description('Event Hubs namespace the roles are scoped to.')
param eventHubNamespaceName string
@description('Event Hub receiving the AKS diagnostic logs.')
param eventHubName string
@description('Functions host storage account the roles are scoped to.')
param hostStorageName string
@description('Pipeline storage account (queues, claim checks) the roles are scoped to.')
param dataStorageName string
@description('Storage queue the function fills and Falco drains.')
param queueName string
@description('Queue receiving what neither side can deliver (dead letters).')
param deadLetterQueueName string
@description('Blob container for events too large for a queue message, and large dead letters.')
param claimCheckContainer string
@description('Application Insights component receiving the function\'s telemetry.')
param appInsightsName string

@description('Grant Table Data Contributor on host storage so the Functions host can persist diagnostic events.')
param enableHostDiagnosticEvents bool

// Azure built-in role definition IDs (learn.microsoft.com: Azure built-in roles).
var eventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
var queueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var queueDataMessageProcessor = '8a0f0c08-91a1-4084-bc3d-661d67233fed'
var queueDataReader = '19e7f393-937e-4f77-808e-94535e297925'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// Scopes: each assignment targets the one hub, queue or container it needs.
resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: eventHubName
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: queueName
}

resource deadLetterQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: deadLetterQueueName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource claims 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: claimCheckContainer
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// ---- Function identity -------------------------------------------------------------------

// Read audit records from the hub (the trigger's identity connection EVENTHUB__*).
resource functionEventHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, functionPrincipalId, eventHubsDataReceiver)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiver)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Put packed audit events on the queue.
resource functionQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, functionPrincipalId, queueDataMessageSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataMessageSender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The watcher (watch_queues) reads how long and how old both queues are: queue properties
// and a peek, never a receive.
resource functionQueueReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, functionPrincipalId, queueDataReader)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionDeadLetterReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterQueue.id, functionPrincipalId, queueDataReader)
  scope: deadLetterQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Park records the function cannot deliver.
resource functionDeadLetterSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterQueue.id, functionPrincipalId, queueDataMessageSender)
  scope: deadLetterQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataMessageSender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Write claim-check blobs for events too large for a 64 KiB queue message.
resource functionClaimsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(claims.id, functionPrincipalId, blobDataContributor)
  scope: claims
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Functions host on its own account: leases, Event Hubs checkpoints, key store, and the Flex
// deployment package all live in blobs, and the host creates its containers, so it needs
// Blob Data Owner at account scope. No queue role: only the blob trigger uses host queues.
resource functionHostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, functionPrincipalId, blobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Optional: the host persists diagnostic events (shown in the portal) in host tables.
resource functionHostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (enableHostDiagnosticEvents) {
  name: guid(hostStorage.id, functionPrincipalId, tableDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights has local auth off: telemetry is accepted only with an Entra token.
resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Falco identity ----------------------------------------------------------------------

// Receive and delete messages (competing consumer); cannot send or manage the queue.
resource falcoQueueProcessor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, falcoPrincipalId, queueDataMessageProcessor)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataMessageProcessor)
    principalId: falcoPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Move poison messages to the dead-letter queue.
resource falcoDeadLetterSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterQueue.id, falcoPrincipalId, queueDataMessageSender)
  scope: deadLetterQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataMessageSender)
    principalId: falcoPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Read claim-check blobs and delete them once their message is done (Reader cannot delete).
resource falcoClaimsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(claims.id, falcoPrincipalId, blobDataContributor)
  scope: claims
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    principalId: falcoPrincipalId
    principalType: 'ServicePrincipal'
  }
}
