// Everything in the resource group: a Flex Consumption (FC1) Function App on Python 3.11 with a
// user-assigned identity for storage, Key Vault, Application Insights and Azure OpenAI.
param environmentName string
param location string
param tags object

@secure()
param databaseUrl string

@description('An existing Azure OpenAI account (its role is granted by main.bicep); empty creates one.')
param openAiAccountName string

param enrichSchedule string

@description('Deployment names the app calls: created in a new account, or already in an existing one.')
param embeddingDeployment string
param chatDeployment string

@description('SKU of the new embedding deployment: `Standard` (regional) is not offered in every region.')
@allowed(['Standard', 'GlobalStandard'])
param embeddingSku string

@description('Embedding and chat models of a new Azure OpenAI account.')
param embeddingModel string = 'text-embedding-3-small'
param embeddingModelVersion string = '1'
param chatModel string = 'gpt-4o-mini'
param chatModelVersion string = '2024-07-18'
@description('Thousands of tokens per minute for each deployment (within your quota).')
param embeddingCapacity int = 30
param chatCapacity int = 30

@description('Flex Consumption scale-out limit and instance size.')
param maximumInstanceCount int = 40
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var deploymentContainer = 'app-package-${token}'
var createOpenAi = empty(openAiAccountName)
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  openAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

// --- storage: the deployment package and the host's own state, identity-based only ---------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

// --- monitoring ------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// --- the database URL, as a Key Vault secret the app reads through a reference ---------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
  }
}

resource databaseSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'database-url'
  properties: { value: databaseUrl }
}

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// --- Azure OpenAI: a new account with both deployments, unless an existing one is given -------

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' = if (createOpenAi) {
  name: 'oai-${token}'
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  properties: {
    customSubDomainName: 'oai-${token}'
    disableLocalAuth: true // keys off: the app signs in with its identity
    publicNetworkAccess: 'Enabled'
  }
}

resource embeddingDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = if (createOpenAi) {
  parent: openAi
  name: embeddingDeployment
  sku: { name: embeddingSku, capacity: embeddingCapacity }
  properties: { model: { format: 'OpenAI', name: embeddingModel, version: embeddingModelVersion } }
}

resource chatDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = if (createOpenAi) {
  parent: openAi
  name: chatDeployment
  sku: { name: 'GlobalStandard', capacity: chatCapacity }
  properties: { model: { format: 'OpenAI', name: chatModel, version: chatModelVersion } }
  dependsOn: [embeddingDeployment] // one deployment at a time per account
}

resource openAiRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (createOpenAi) {
  name: guid(resourceGroup().id, 'oai-${token}', identity.id, roles.openAiUser)
  scope: openAi
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.openAiUser)
  }
}

var openAiEndpoint = createOpenAi ? openAi!.properties.endpoint : 'https://${openAiAccountName}.openai.azure.com/'

// --- the Function App ------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    siteConfig: { minTlsVersion: '1.2' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB }
      runtime: { name: 'python', version: '3.11' }
    }
  }
  dependsOn: [storageRoles, vaultRole]

  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      AZURE_CLIENT_ID: identity.properties.clientId // DefaultAzureCredential picks this identity
      DATABASE_URL: '@Microsoft.KeyVault(SecretUri=${databaseSecret.properties.secretUri})'
      AI_PROVIDER: 'azure'
      AZURE_OPENAI_ENDPOINT: openAiEndpoint
      AZURE_OPENAI_EMBEDDING_DEPLOYMENT: embeddingDeployment
      AZURE_OPENAI_CHAT_DEPLOYMENT: chatDeployment
      ENRICH_SCHEDULE: enrichSchedule
    }
  }
}

output functionAppName string = functionApp.name
output identityPrincipalId string = identity.properties.principalId
output openAiEndpoint string = openAiEndpoint
output url string = 'https://${functionApp.properties.defaultHostName}'
