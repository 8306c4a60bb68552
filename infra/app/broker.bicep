// Everything the broker runs on, in one resource group. Every permission is the least that works,
// each granted to the Function App's own system-assigned identity at the narrowest scope that works,
// and none at subscription or resource-group scope.

param location string
param tags object
param resourceToken string
param brokerAudiences string
@description('The registry catalog (REGISTRIES), as parsed JSON')
param registries array
param adminRole string
param maxTtlSeconds string
@description('Optional e-mail address for the broker\'s alerts (they fire in the portal either way)')
param alertEmail string = ''

var deploymentContainerName = 'app-package'
// The Functions host keeps its locks, timer schedule status and keys in these; created here so that the
// host needs rights on them alone, not on the account.
var hostContainerNames = ['azure-webjobs-hosts', 'azure-webjobs-secrets']
var brokerTables = ['grants', 'blocks', 'issuances', 'issuanceindex', 'adminaudit', 'rotations', 'logincredentials']
// The audit: the broker only ever adds rows to these and reads them, so it gets no right to change or delete one.
var appendOnlyTables = ['issuances', 'issuanceindex', 'adminaudit']
var mutableTables = filter(brokerTables, table => !contains(appendOnlyTables, table))

// Key Vault secrets the catalog names. An operator creates each before adding the entry (docs/operations.md).
var storedEntries = filter(registries, entry => entry.kind != 'acr')
// Rotation providers that write new versions; `none` only watches the expiry.
var rotatedSecretNames = map(filter(storedEntries, entry => contains(['dockerhub', 'acr-token'], entry.?rotation.?provider ?? 'none')), entry => entry.credentialSecret)
var readSecretNames = filter(
  union(
    map(storedEntries, entry => entry.credentialSecret),
    map(registries, entry => entry.?rotation.?adminSecret ?? ''),
    map(registries, entry => entry.?login.?apiSecret ?? '')
  ),
  name => !empty(name) && !contains(rotatedSecretNames, name)
)

// The Functions host buffers a request before the broker sees it: this caps that at twice the broker's
// own 16 KiB limit (src/http/dispatch.ts), so a body just over 16 KiB still gets the broker's
// problem+json 413 and nothing larger is ever held in memory.
var hostRequestBodyLimitBytes = 32768

// Built-in role definition IDs.
var roles = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Read and insert entities, nothing else (Table Storage authorizes "Insert Entity" by entities/add/action;
// update, merge, replace and delete need actions this role lacks).
resource appendOnlyTableRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'registry-broker-append-only-table')
  properties: {
    roleName: 'Registry broker append-only table (${resourceToken})'
    description: 'Read and add table entities; never update or delete one. For the registry broker audit tables.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'
        ]
        notDataActions: []
      }
    ]
  }
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

resource hostContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for name in hostContainerNames: {
    parent: blobService
    name: name
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource appendOnly 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in appendOnlyTables: {
    parent: tableService
    name: table
  }
]

resource mutable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in mutableTables: {
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

// Who read or wrote which secret, when: every Key Vault request, to the workspace.
resource vaultAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logs.id
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// Infra never writes a secret value: each of these is created by an operator before its catalog entry
// (docs/operations.md), and rotation's staging twin `<name>-pending` with it.
resource readSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for name in readSecretNames: {
  parent: vault
  name: name
}]

resource rotatedSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for name in rotatedSecretNames: {
  parent: vault
  name: name
}]

resource pendingSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for name in rotatedSecretNames: {
  parent: vault
  name: '${name}-pending'
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

// Node's options for the Functions worker, shared with `npm run bench` (bench/cost.bench.ts). A heap
// limit far below the instance's memory makes V8 collect before the old generation grows to four
// times what is live: about 150 MiB RSS under load instead of 200+, at no CPU cost (issue 14). The
// live heap is ~30 MiB even with 10,000 grants.
var nodeWorker = loadJsonContent('nodeWorker.json')

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
    REGISTRIES: string(registries)
    ADMIN_ROLE: adminRole
    MAX_TTL_SECONDS: maxTtlSeconds
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(hostRequestBodyLimitBytes)
    NODE_OPTIONS: nodeWorker.NODE_OPTIONS
  }
}

// Issuance reads the stored registry credentials, rotation its admin secrets, login forms their API
// secrets: read-only, on exactly the secrets the catalog names, never the vault.
resource readSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in readSecretNames: {
    name: guid(readSecrets[i].id, broker.id, roles.keyVaultSecretsUser)
    scope: readSecrets[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    }
  }
]

// Rotation writes new versions: only of the secrets it rotates (which issuance also reads).
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

// The audit tables: read and append, so the broker can neither rewrite nor delete its own records.
resource appendOnlyTablesWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (table, i) in appendOnlyTables: {
    name: guid(appendOnly[i].id, broker.id, appendOnlyTableRole.id)
    scope: appendOnly[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      // A role definition lives at the subscription, wherever it was declared.
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', appendOnlyTableRole.name)
    }
  }
]

// Grants, blocks, the rotation log and live login credentials change in place: data contributor, on each table alone.
resource mutableTablesContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (table, i) in mutableTables: {
    name: guid(mutable[i].id, broker.id, roles.storageTableDataContributor)
    scope: mutable[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    }
  }
]

// Flex Consumption reads (and a deployment writes) the app package in its container: data contributor there alone.
resource deploymentContainerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, broker.id, roles.storageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    principalId: broker.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// The host's own storage (locks, timer schedule monitor, keys): the role Microsoft documents for it, on its two containers alone.
resource hostContainersOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (name, i) in hostContainerNames: {
    name: guid(hostContainers[i].id, broker.id, roles.storageBlobDataOwner)
    scope: hostContainers[i]
    properties: {
      principalId: broker.identity.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    }
  }
]

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

// Alerts and the workbook the operator gets without configuring anything.
module monitoring 'monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    insightsId: insights.id
    alertEmail: alertEmail
  }
}

output brokerUrl string = 'https://${broker.properties.defaultHostName}/api'
output keyVaultName string = vault.name
output brokerPrincipalId string = broker.identity.principalId
output functionAppName string = broker.name
