// The ingest function: Flex Consumption (FC1), Python 3.11, user-assigned identity, no secrets.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Flex Consumption plan name.')
param planName string
@description('Function app name.')
param appName string
@description('Resource id of the user-assigned identity the function runs as.')
param identityId string
@description('Client id of that identity (for DefaultAzureCredential).')
param identityClientId string
@description('Application Insights component receiving the function\'s telemetry.')
param appInsightsName string

@description('Host storage (AzureWebJobsStorage): leases, Event Hubs checkpoints, deployment package.')
param hostBlobEndpoint string
@description('Queue endpoint of the Functions host storage account.')
param hostQueueEndpoint string
@description('Table endpoint of the Functions host storage account.')
param hostTableEndpoint string
@description('Blob container holding the function\'s deployment package.')
param deploymentContainerName string

@description('Most Flex Consumption instances the function scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance (MB).')
param instanceMemoryMB int

// Settings the function code reads (the contract with function_app.py).
@description('NAMESPACE.servicebus.windows.net the trigger connects to with the identity.')
param eventHubFullyQualifiedNamespace string
@description('Event Hub receiving the AKS diagnostic logs.')
param eventHubName string
@description('Consumer group of the Event Hub trigger.')
param eventHubConsumerGroup string
@description('AKS diagnostic log categories streamed to the Event Hub and accepted by the function.')
param auditCategories array
@description('Steady rate (audit events per second) each function worker forwards; 0 turns the limit off.')
param rateLimitEventsPerSecond int
@description('Token bucket size of the function\'s rate limit.')
param rateLimitBurst int
@description('https://ACCOUNT.queue.core.windows.net of the pipeline storage account.')
param queueAccountUrl string
@description('Storage queue the function fills and Falco drains.')
param queueName string
@description('Queue receiving what neither side can deliver (dead letters).')
param deadLetterQueueName string
@description('https://ACCOUNT.blob.core.windows.net of the pipeline storage account.')
param claimCheckAccountUrl string
@description('Blob container for events too large for a queue message, and large dead letters.')
param claimCheckContainer string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; an outage only delays delivery, the hub retains events past the last checkpoint
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

// No HTTP triggers: the app pulls from Event Hubs, so the inbound-HTTP checks below do not apply.
// (pycep-parser rejects more than four comment lines in a row inside an object.)
resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_17: no HTTP triggers, nothing to authenticate with client certificates
  // checkov:skip=CKV_AZURE_213: no HTTP endpoint to probe; the Functions platform monitors the host
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per Event Hubs backlog; there is no fixed instance count
  // checkov:skip=CKV_AZURE_222: publishing (Core Tools, zip deploy) needs the public endpoint; private endpoints and VNet integration are out of scope
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION here:
      // runtime and version live in functionAppConfig above.
      appSettings: [
        // Host storage by identity: no AzureWebJobsStorage connection string exists.
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: hostBlobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: hostQueueEndpoint
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: hostTableEndpoint
        }
        // Event Hub trigger connection (connection="EVENTHUB") by identity.
        {
          name: 'EVENTHUB__fullyQualifiedNamespace'
          value: eventHubFullyQualifiedNamespace
        }
        {
          name: 'EVENTHUB__credential'
          value: 'managedidentity'
        }
        {
          name: 'EVENTHUB__clientId'
          value: identityClientId
        }
        // The SDK clients in the function code (DefaultAzureCredential) pick this identity.
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'EVENTHUB_NAME'
          value: eventHubName
        }
        {
          name: 'EVENTHUB_CONSUMER_GROUP'
          value: eventHubConsumerGroup
        }
        {
          name: 'AUDIT_CATEGORIES'
          value: join(auditCategories, ',')
        }
        {
          name: 'rate_limit_events_per_second'
          value: string(rateLimitEventsPerSecond)
        }
        {
          name: 'rate_limit_burst'
          value: string(rateLimitBurst)
        }
        {
          name: 'QUEUE_ACCOUNT_URL'
          value: queueAccountUrl
        }
        {
          name: 'QUEUE_NAME'
          value: queueName
        }
        {
          name: 'DEADLETTER_QUEUE_NAME'
          value: deadLetterQueueName
        }
        {
          name: 'CLAIMCHECK_ACCOUNT_URL'
          value: claimCheckAccountUrl
        }
        {
          name: 'CLAIMCHECK_CONTAINER'
          value: claimCheckContainer
        }
      ]
    }
  }
}

// Deployments go through Entra ID (Core Tools, az CLI); no publishing passwords.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
