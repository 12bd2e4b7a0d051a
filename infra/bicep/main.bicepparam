using 'main.bicep'

// Required --------------------------------------------------------------------------------

// Clusters to audit: names in the deployment's resource group, or full resource IDs.
param aksClusters = [
  'my-aks'
  // '/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerService/managedClusters/<name>'
]

// az aks show -g <rg> -n my-aks --query oidcIssuerProfile.issuerUrl -o tsv
param oidcIssuerUrl = 'https://<region>.oic.prod-aks.azure.com/<tenant-id>/<guid>/'

// Optional (defaults shown) ---------------------------------------------------------------

// Must equal the clusters' region (diagnostic settings stream within a region only).
// param location = '<resource group location>'
// param namePrefix = 'k8saudit'                  // 3-11 chars, part of every resource name
// param tags = {}

// Diagnostic categories: 'kube-audit-admin' (writes), 'kube-audit' (also reads, superset of
// kube-audit-admin: pick one of the two), 'guard'.
// param auditCategories = ['kube-audit-admin']
// param diagnosticSettingName = 'k8saudit-to-eventhub'

// Event Hubs Standard
// param eventHubCapacity = 1                     // throughput units, 1-40
// param eventHubPartitionCount = 4               // 1-32, fixed after creation
// param eventHubRetentionDays = 1                // 1-7
// param diagnosticsRuleRights = ['Manage', 'Send', 'Listen']  // what Azure Monitor documents

// Queue, dead-letter queue and claim-check container names (the function and Falco read them)
// param queueName = 'k8saudit'
// param deadLetterQueueName = 'k8saudit-deadletter'
// param claimCheckContainer = 'k8saudit-claims'

// Function (Flex Consumption)
// param rateLimitEventsPerSecond = 1000          // per function worker; 0: no limit
// param rateLimitBurst = 2000
// param maximumInstanceCount = 40                // 1-1000
// param instanceMemoryMB = 2048                  // 512, 2048 or 4096
// param enableHostDiagnosticEvents = false       // true adds Table Data Contributor on host storage
// param logRetentionDays = 30                    // Log Analytics, 30-730

// Falco workload identity (federated credential subject system:serviceaccount:<ns>:<sa>)
// param falcoNamespace = 'falco'
// param falcoServiceAccount = 'falco'

// Alerts (docs/alerts.md), on by default; they notify an action group with these receivers
// param enableAlerts = true
// param alertEmails = []                         // e.g. ['secops@contoso.com']
// param alertWebhookUrl = ''                     // HTTPS, common alert schema
// param alertIngestSilenceMinutes = 15           // no successful ingest invocation (5-360, Azure's window sizes)
// param alertIngestFailures = 3                  // failed invocations in that window
// param alertClusterSilenceMinutes = 30          // a cluster that was sending went quiet
// param alertClusterLookbackHours = 6            // ... that was sending within these hours (1-6, 24, 48)
// param alertQueueAgeMinutes = 15                // the queue's oldest message waits longer
// param azureMonitorWorkspaceId = ''             // managed Prometheus: Falco-side rule group
