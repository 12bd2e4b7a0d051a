// Event Hubs: where AKS diagnostic settings stream kube-audit records.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Event Hubs namespace name.')
param namespaceName string
@description('Event Hub receiving the AKS diagnostic logs.')
param eventHubName string
@description('Consumer group the ingest function reads with.')
param consumerGroupName string
@description('Authorization rule (Send only) the diagnostic settings use.')
param diagnosticsRuleName string

@description('Throughput units (1 TU = 1 MB/s or 1000 events/s ingress).')
@minValue(1)
@maxValue(40)
param capacity int

@description('Partitions bound the function\'s parallelism; fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param partitionCount int

@description('Days the Event Hub keeps events.')
@minValue(1)
@maxValue(7)
param messageRetentionInDays int

@description('Rights of the namespace SAS rule the AKS diagnostic settings send with.')
@allowed([
  'Send'
  'Listen'
  'Manage'
])
param diagnosticsRuleRights array

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    minimumTlsVersion: '1.2'
    // Diagnostic settings can only stream with a SAS rule, so local auth must stay on;
    // every other client (the function) uses Entra ID.
    disableLocalAuth: false
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
  }
}

// A dedicated group so other readers of the hub never steal the function's checkpoints.
resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
}

// Namespace-level rule: diagnostic settings take a namespace authorization rule plus a hub name.
// Microsoft's docs list Manage+Send+Listen, which is needed only when Azure Monitor creates the
// hub itself; we pre-create the hub, so the rule can send and nothing else.
resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {
  parent: namespace
  name: diagnosticsRuleName
  properties: {
    rights: diagnosticsRuleRights
  }
}

output namespaceName string = namespace.name
output hubName string = hub.name
output consumerGroupName string = consumerGroup.name
// serviceBusEndpoint is https://<ns>.servicebus.windows.net:443/ (suffix differs in sovereign clouds).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output diagnosticsRuleId string = diagnosticsRule.id
