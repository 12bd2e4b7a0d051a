// Diagnostic setting on one existing AKS cluster. Deployed at the cluster's resource group
// (main.bicep sets the scope), so clusters in other resource groups or subscriptions work.
@description('AKS managed cluster whose audit logs are streamed.')
param clusterName string
@description('Name of the diagnostic setting created on the cluster.')
param settingName string

@description('kube-audit-admin (writes only), kube-audit (everything, includes reads) and/or guard.')
param categories array

@description('Namespace-level authorization rule with Send right.')
param eventHubAuthorizationRuleId string
@description('Event Hub receiving the AKS diagnostic logs.')
param eventHubName string

resource cluster 'Microsoft.ContainerService/managedClusters@2024-05-01' existing = {
  name: clusterName
}

resource auditToEventHub 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: cluster
  properties: {
    eventHubAuthorizationRuleId: eventHubAuthorizationRuleId
    eventHubName: eventHubName
    logs: [for category in categories: {
      category: category
      enabled: true
    }]
  }
}
