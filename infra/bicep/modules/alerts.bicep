// Alerts on the function's metrics (Application Insights -> AppMetrics in the workspace), and
// the action group they notify. What each means and what to do first: docs/alerts.md.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Prefix of the alert rule and action group names.')
param namePrefix string
@description('Resource id of the Log Analytics workspace holding the function\'s AppMetrics.')
param workspaceId string

@description('Email addresses the action group notifies.')
param emails array
@description('Webhook (HTTPS) the action group posts the common alert schema to; empty for none.')
param webhookUrl string

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
param ingestSilenceMinutes int
@description('Failed ingest invocations within ingestSilenceMinutes before alerting.')
@minValue(1)
param ingestFailures int
@description('Minutes a cluster that was sending may go without a delivered audit event.')
@minValue(5)
@maxValue(1440)
param clusterSilenceMinutes int
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
param clusterLookbackHours int
@description('Minutes the queue\'s oldest message may wait before alerting (Falco is not keeping up).')
@minValue(5)
@maxValue(1440)
param queueAgeMinutes int

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: take('${namePrefix}-k8sa', 12)
    enabled: true
    emailReceivers: [for (email, i) in emails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(webhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: webhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

// One log search alert per condition: the query (queries/*.kql) yields one row per dimension
// value with the measure the threshold applies to.
var rules = [
  {
    name: 'ingest-stalled'
    displayName: 'k8saudit-aks: no audit event reaches the queue'
    description: 'No ingest invocation succeeded for ${ingestSilenceMinutes} minutes: the function is not triggered (role, consumer group, diagnostic settings) or every attempt fails. Falco sees nothing new.'
    severity: 1
    query: loadTextContent('../queries/ingest-stalled.kql')
    measure: 'Succeeded'
    operator: 'LessThan'
    threshold: 1
    dimensions: []
    frequency: 'PT5M'
    window: 'PT${ingestSilenceMinutes}M'
  }
  {
    name: 'ingest-failing'
    displayName: 'k8saudit-aks: ingest invocations failing'
    description: 'At least ${ingestFailures} ingest invocations failed in ${ingestSilenceMinutes} minutes. The host retries them (nothing is checkpointed past them); the function\'s logs say why.'
    severity: 2
    query: loadTextContent('../queries/ingest-failing.kql')
    measure: 'Failed'
    operator: 'GreaterThanOrEqual'
    threshold: ingestFailures
    dimensions: []
    frequency: 'PT5M'
    window: 'PT${ingestSilenceMinutes}M'
  }
  {
    name: 'dead-letters'
    displayName: 'k8saudit-aks: records dead-lettered'
    description: 'The function dead-lettered records (by reason): they are not in Falco. Inspect the dead-letter queue.'
    severity: 2
    query: loadTextContent('../queries/dead-letters.kql')
    measure: 'DeadLetters'
    operator: 'GreaterThan'
    threshold: 0
    dimensions: [
      {
        name: 'Reason'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
    frequency: 'PT5M'
    window: 'PT15M'
  }
  {
    name: 'cluster-silent'
    displayName: 'k8saudit-aks: a cluster stopped sending audit events'
    description: 'A cluster that sent audit events in the last ${clusterLookbackHours} hours has had none delivered for ${clusterSilenceMinutes} minutes: its diagnostic setting, or the cluster, is gone or broken.'
    severity: 1
    query: loadTextContent('../queries/cluster-silent.kql')
    measure: 'SilentMinutes'
    operator: 'GreaterThan'
    threshold: clusterSilenceMinutes
    dimensions: [
      {
        name: 'Cluster'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
    frequency: 'PT15M'
    window: 'PT${clusterLookbackHours}H'
  }
  {
    name: 'queue-backlog'
    displayName: 'k8saudit-aks: Falco is not draining the queue'
    description: 'The queue\'s oldest message has waited more than ${queueAgeMinutes} minutes, or the watcher measured nothing: no Falco replica reads the queue, or they read slower than the function writes.'
    severity: 1
    query: loadTextContent('../queries/queue-backlog.kql')
    measure: 'OldestMinutes'
    operator: 'GreaterThan'
    threshold: queueAgeMinutes
    dimensions: []
    frequency: 'PT5M'
    window: 'PT15M'
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    // A new workspace has no AppMetrics table until the function first exports: Azure would
    // refuse the rule as naming an unknown table. The tests compile each query instead.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Total'
          metricMeasureColumn: rule.measure
          operator: rule.operator
          threshold: rule.threshold
          dimensions: rule.dimensions
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
