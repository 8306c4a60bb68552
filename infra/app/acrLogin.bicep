// The broker's right on one Azure Container Registry whose catalog entry has `login.provider:
// acr-scope-map`: create, read and delete scope maps and tokens, and generate a token's password.
// Deployed into the registry's own resource group (it may be in another one, or another subscription).
//
// Why a custom role: the least built-in role that can manage scope maps and tokens,
// "Container Registry Contributor and Data Access Configuration Administrator",
// can also create, update and reconfigure the registry itself and its admin user.
// This one holds only what login credentials need.

param registryName string
param principalId string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource scopeMapsAndTokensRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'registry-broker-acr-scope-maps-and-tokens')
  properties: {
    roleName: 'Registry broker ACR scope maps and tokens (${uniqueString(resourceGroup().id)})'
    description: 'Create, read and delete ACR scope maps and tokens and generate token passwords: the registry broker\'s login credentials.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: [
          'Microsoft.ContainerRegistry/registries/scopeMaps/read'
          'Microsoft.ContainerRegistry/registries/scopeMaps/write'
          'Microsoft.ContainerRegistry/registries/scopeMaps/delete'
          'Microsoft.ContainerRegistry/registries/scopeMaps/operationStatuses/read'
          'Microsoft.ContainerRegistry/registries/tokens/read'
          'Microsoft.ContainerRegistry/registries/tokens/write'
          'Microsoft.ContainerRegistry/registries/tokens/delete'
          'Microsoft.ContainerRegistry/registries/tokens/operationStatuses/read'
          'Microsoft.ContainerRegistry/registries/generateCredentials/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// Login credentials for this registry: scope maps and tokens on it alone, nothing on its content or configuration.
resource scopeMapsAndTokens 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, scopeMapsAndTokensRole.id)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    // A role definition lives at the subscription, wherever it was declared.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', scopeMapsAndTokensRole.name)
  }
}
