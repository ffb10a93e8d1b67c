// `azd up` entry point: one resource group with everything the app needs (see app.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region (one that offers Flex Consumption and Azure OpenAI).')
param location string

@secure()
@description('Postgres connection string (Neon: postgresql://...?sslmode=require). Stored in Key Vault.')
param databaseUrl string

@description('An existing Azure OpenAI account to use; empty creates one with the two deployments.')
param openAiAccountName string = ''

@description('Resource group of the existing Azure OpenAI account; empty means this one.')
param openAiResourceGroup string = ''

@description('The embedding deployment the app calls (in the existing account, or created under this name).')
param openAiEmbeddingDeployment string = 'text-embedding-3-small'

@description('The chat deployment the app calls (in the existing account, or created under this name).')
param openAiChatDeployment string = 'gpt-4o-mini'

@description('SKU of a new embedding deployment; `GlobalStandard` where the regional `Standard` is not offered.')
@allowed(['Standard', 'GlobalStandard'])
param openAiEmbeddingSku string = 'Standard'

@description('When the enrichment worker runs (NCRONTAB). Hourly lets a Neon compute suspend.')
param enrichSchedule string = '0 0 * * * *'

var tags = { 'azd-env-name': environmentName }

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module app 'app.bicep' = {
  name: 'app'
  scope: group
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    databaseUrl: databaseUrl
    openAiAccountName: openAiAccountName
    embeddingDeployment: openAiEmbeddingDeployment
    chatDeployment: openAiChatDeployment
    embeddingSku: openAiEmbeddingSku
    enrichSchedule: enrichSchedule
  }
}

// An existing account may live in another resource group: grant the role there.
module existingOpenAiRole 'openai-role.bicep' = if (!empty(openAiAccountName)) {
  name: 'openai-role'
  scope: resourceGroup(empty(openAiResourceGroup) ? group.name : openAiResourceGroup)
  params: {
    accountName: openAiAccountName
    principalId: app.outputs.identityPrincipalId
  }
}

output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output AZURE_OPENAI_ENDPOINT string = app.outputs.openAiEndpoint
output SERVICE_API_URL string = app.outputs.url
output AZURE_RESOURCE_GROUP string = group.name
