// The Falco-side alert rules (deploy/falco/prometheus-rules.json, the PrometheusRule for the
// Prometheus operator) as an AKS managed Prometheus rule group: one source, two forms.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Prefix of the rule group name.')
param namePrefix string
@description('Resource id of the Azure Monitor workspace the AKS clusters\' managed Prometheus writes to.')
param azureMonitorWorkspaceId string
@description('Action group the alerts notify.')
param actionGroupId string

var ruleSource = loadJsonContent('../../../deploy/falco/prometheus-rules.json').spec.groups[0]
// Prometheus severity labels -> Azure Monitor alert severities (0 critical ... 4 verbose).
var severities = {
  critical: 1
  warning: 2
}

resource ruleGroup 'Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01' = {
  name: '${namePrefix}-falco-k8saudit-aks'
  location: location
  tags: tags
  properties: {
    description: 'Falco k8saudit-aks plugin: no events, dead letters, backlog, storage errors, metrics absent (docs/alerts.md).'
    scopes: [
      azureMonitorWorkspaceId
    ]
    enabled: true
    interval: 'PT${toUpper(ruleSource.interval)}'
    rules: [for rule in ruleSource.rules: {
      alert: rule.alert
      expression: rule.expr
      for: 'PT${toUpper(rule['for'])}'
      severity: severities[rule.labels.severity]
      labels: rule.labels
      annotations: rule.annotations
      enabled: true
      resolveConfiguration: {
        autoResolved: true
        timeToResolve: 'PT10M'
      }
      actions: [
        {
          actionGroupId: actionGroupId
        }
      ]
    }]
  }
}
