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

// Empty until an operator has put the first credential in the vault (docs/operations.md): the broker then
// answers 503 on /api/v1/health naming REGISTRIES, and every secret role below waits for its secret.
@description('The registry catalog (REGISTRIES), a JSON array; see README "Registry catalog"')
param registries array = []

@description('App role required on admin routes (ADMIN_ROLE)')
param adminRole string = 'Broker.Admin'

@description('Longest registry-token lifetime handed out, seconds (MAX_TTL_SECONDS)')
param maxTtlSeconds string = '5400'

@description('Optional e-mail address for the broker\'s alerts (they fire in the portal either way)')
param alertEmail string = ''

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
    alertEmail: alertEmail
  }
}

// ACR repository-scoped login credentials (`login.provider: acr-scope-map`): scope maps and tokens on
// exactly those registries, wherever they live, and on no other.
var acrLoginRegistryIds = map(filter(registries, entry => (entry.?login.?provider ?? '') == 'acr-scope-map'), entry => entry.login.registryResourceId)

module acrLogin 'app/acrLogin.bicep' = [
  for (registryId, i) in acrLoginRegistryIds: {
    name: 'registry-broker-acr-login-${i}'
    scope: resourceGroup(split(registryId, '/')[2], split(registryId, '/')[4])
    params: {
      registryName: last(split(registryId, '/'))
      principalId: broker.outputs.brokerPrincipalId
    }
  }
]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output REGISTRY_BROKER_URL string = broker.outputs.brokerUrl
output KEY_VAULT_NAME string = broker.outputs.keyVaultName
output BROKER_PRINCIPAL_ID string = broker.outputs.brokerPrincipalId
output FUNCTION_APP_NAME string = broker.outputs.functionAppName
