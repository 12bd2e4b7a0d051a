// A hardened storage account reachable only with Entra ID (no shared key, no anonymous blobs).
// Used twice by main.bicep: the Functions host account and the pipeline (queue) account.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Storage account name.')
param name string

@description('Queues to create.')
param queueNames array = []

@description('Blob containers to create.')
param containerNames array = []

// Falco reaches the queue from AKS and the Flex app runs without VNet integration, so the
// endpoint stays public; Entra ID RBAC with shared keys off is the access control.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_35: clients (AKS pods, Flex Consumption without VNet) reach the account over its public endpoint; shared key is off, access is Entra RBAC only
  // checkov:skip=CKV_AZURE_59: same as CKV_AZURE_35; use private endpoints to close it in a VNet-integrated deployment
  // checkov:skip=CKV_AZURE_206: a transient buffer (messages live seconds to minutes) and host scratch space; LRS keeps cost down, and ZRS is not offered in every region
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    // Every client (Functions host, function, Falco) authenticates with Entra ID.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containerNames: {
  parent: blobService
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queueNames: {
  parent: queueService
  name: queue
}]

// No lifecycle rule: queue messages and dead letters never expire, and a lifecycle delete
// would take the claim-check or dead-letter blob of a message still waiting in a queue. The
// reader deletes a claim-check blob right after its message (docs/failure-modes.md).
output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
