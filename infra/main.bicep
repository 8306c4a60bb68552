targetScope = 'subscription'

// azd entry point, in the conventions of Azure-Samples/functions-quickstart-typescript-azd:
// one resource group per environment, everything else in app/broker.bicep.

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource')
param environmentName string

@minLength(1)
@description('Region for every resource (one that offers Flex Consumption)')
param location string

@description('Comma list of accepted token audiences: the broker app registration\'s App ID URI and client ID (set by the preprovision hook)')
param brokerAudiences string

@description('The registry catalog, JSON (REGISTRIES); see README "Registry catalog"')
param registries string = '[{"kind":"dockerhub","credentialSecret":"dockerhub"}]'

@description('App role required on admin routes (ADMIN_ROLE)')
param adminRole string = 'Broker.Admin'

@description('Longest registry-token lifetime handed out, seconds (MAX_TTL_SECONDS)')
param maxTtlSeconds string = '5400'

@description('Comma list of Key Vault secrets that rotation rewrites (catalog entries with a rotation provider); empty = rotation off')
param rotatedSecrets string = ''

var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module broker 'app/broker.bicep' = {
  name: 'registry-broker'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: toLower(uniqueString(subscription().id, environmentName, location))
    brokerAudiences: brokerAudiences
    registries: registries
    adminRole: adminRole
    maxTtlSeconds: maxTtlSeconds
    rotatedSecretNames: empty(rotatedSecrets) ? [] : split(rotatedSecrets, ',')
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output REGISTRY_BROKER_URL string = broker.outputs.brokerUrl
output KEY_VAULT_NAME string = broker.outputs.keyVaultName
output BROKER_PRINCIPAL_ID string = broker.outputs.brokerPrincipalId
