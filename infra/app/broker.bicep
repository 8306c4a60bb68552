// Everything the broker runs on, in one resource group. Every permission is the least that works,
// each granted to the Function App's own system-assigned identity at the narrowest scope that works,
// and none at subscription or resource-group scope.

param location string
param tags object
param resourceToken string
param brokerAudiences string
param registries string
param adminRole string
param maxTtlSeconds string
param rotatedSecretNames array

var deploymentContainerName = 'app-package'
var brokerTables = ['grants', 'blocks', 'issuances', 'adminaudit', 'rotations']

// Built-in role definition IDs.
var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 90
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Telemetry only with Entra ID (the app's identity), never with the instrumentation key alone.
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in brokerTables: {
    parent: tableService
    name: table
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

// Rotation stages a new credential in `<name>-pending` before it is verified; the secret must exist for
// its role assignment. Its placeholder value is an empty JSON object, never a credential.
resource pendingSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for name in rotatedSecretNames: {
    parent: vault
    name: '${name}-pending'
    properties: {
      value: '{}'
      contentType: 'application/json'
    }
  }
]

// The stored credentials themselves are put there by an operator (docs/operations.md) before rotation is enabled.
resource rotatedSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for name in rotatedSecretNames: {
  parent: vault
  name: name
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource broker 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Publishing credentials off: deployments go through Entra ID (azd), never FTP or basic auth.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: broker
  name: 'ftp'
  properties: { allow: false }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: broker
  name: 'scm'
  properties: { allow: false }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: broker
  name: 'appsettings'
  properties: {
    // Functions host storage through the app's identity: no connection string, no key.
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    // The broker's settings (src/config.ts).
    BROKER_TENANT_ID: tenant().tenantId
    BROKER_AUDIENCES: brokerAudiences
    KEY_VAULT_URL: vault.properties.vaultUri
    TABLES_ENDPOINT: storage.properties.primaryEndpoints.table
    REGISTRIES: registries
    ADMIN_ROLE: adminRole
    MAX_TTL_SECONDS: maxTtlSeconds
  }
}

// Issuance reads the stored registry credentials: read-only, on this vault only.
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, broker.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: broker.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// Rotation writes new versions: only of the secrets it rotates, and only when rotation is on.
resource rotatedSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in rotatedSecretNames: {
    name: guid(rotatedSecrets[i].id, broker.id, roles.keyVaultSecretsOfficer)
    scope: rotatedSecrets[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    }
  }
]

// Rotation stages new credentials in the `-pending` twins: the same role, on those secrets alone.
resource pendingSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in rotatedSecretNames: {
    name: guid(pendingSecrets[i].id, broker.id, roles.keyVaultSecretsOfficer)
    scope: pendingSecrets[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    }
  }
]

// Grants, blocks, the audit tables and the rotation log live in Table Storage of this account.
resource storageTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, broker.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: broker.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

// Flex Consumption reads its deployment package from, and the host keeps timer leases in, blob storage.
resource storageBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, broker.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: broker.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Telemetry with Entra ID (local auth is off on the component).
resource insightsMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, broker.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: broker.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

output brokerUrl string = 'https://${broker.properties.defaultHostName}/api'
output keyVaultName string = vault.name
output brokerPrincipalId string = broker.identity.principalId
