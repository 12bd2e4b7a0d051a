// One user-assigned identity per workload, so each gets only its own role assignments.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('User-assigned identity of the ingest function.')
param functionIdentityName string
@description('User-assigned identity of Falco (federated with its Kubernetes service account).')
param falcoIdentityName string

@description('The AKS cluster\'s OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl).')
param oidcIssuerUrl string
@description('Kubernetes namespace Falco runs in.')
param falcoNamespace string
@description('Kubernetes service account of Falco (workload identity subject).')
param falcoServiceAccount string

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionIdentityName
  location: location
  tags: tags
}

resource falcoIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: falcoIdentityName
  location: location
  tags: tags
}

// AKS workload identity: the Falco pod's projected service-account token is exchanged for an
// Entra token of this identity. Only that one namespace/service account from that issuer matches.
resource falcoFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: falcoIdentity
  name: 'aks-${falcoNamespace}-${falcoServiceAccount}'
  properties: {
    issuer: oidcIssuerUrl
    subject: 'system:serviceaccount:${falcoNamespace}:${falcoServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

output functionIdentityId string = functionIdentity.id
output functionPrincipalId string = functionIdentity.properties.principalId
output functionClientId string = functionIdentity.properties.clientId
output falcoPrincipalId string = falcoIdentity.properties.principalId
output falcoClientId string = falcoIdentity.properties.clientId
