// Log Analytics + workspace-based Application Insights for the function.
@description('Azure region of the resources.')
param location string
@description('Tags applied to every resource.')
param tags object
@description('Log Analytics workspace name.')
param workspaceName string
@description('Application Insights component receiving the function\'s telemetry.')
param appInsightsName string

@description('Days the workspace keeps data.')
@minValue(30)
@maxValue(730)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Ingestion requires an Entra token (Monitoring Metrics Publisher, see rbac.bicep), so the
    // instrumentation key in the connection string is not enough to write telemetry.
    DisableLocalAuth: true
  }
}

// The connection string is read where it is used (function-app.bicep), never passed as an output.
output appInsightsName string = appInsights.name
output workspaceId string = workspace.id
