#!/bin/sh
# azd preprovision hook: find or create the broker's Entra app registration, so that tokens can be
# requested for it (its App ID URI is the audience), operators can sign in to its admin API (a
# user_impersonation scope pre-authorised for the Azure CLI), and it defines two app roles: the admin
# role, and Broker.Caller for workloads once "assignment required" is on (docs/operations.md).
# Idempotent: a second run changes nothing. Needs `az login` with the right to create app registrations.
set -eu

env_name=${AZURE_ENV_NAME:?run through azd (AZURE_ENV_NAME is not set)}
subscription=${AZURE_SUBSCRIPTION_ID:?run through azd (AZURE_SUBSCRIPTION_ID is not set)}
admin_role=${BROKER_ADMIN_ROLE:-Broker.Admin}
caller_role=Broker.Caller
azure_cli=04b07795-8ddb-461a-bbee-02f9e1bf7b46

# The app registration must live in the tenant azd deploys to, whatever `az` was last pointed at.
az account set --subscription "$subscription"
tenant=$(az account show --query tenantId -o tsv)
# The tenant-unique form: Entra refuses a bare api://<name> in tenants that require one.
uri="api://${tenant}/registry-broker-${env_name}"

app_id=$(az ad app list --identifier-uri "$uri" --query '[0].appId' -o tsv)
if [ -z "$app_id" ]; then
  app_id=$(az ad app create --display-name "registry-broker (${env_name})" --identifier-uris "$uri" \
    --sign-in-audience AzureADMyOrg --query appId -o tsv)
  echo "created app registration $app_id ($uri)"
fi
object_id=$(az ad app show --id "$app_id" --query id -o tsv)

# Keep the IDs of existing roles and scope: Entra refuses to change them while they are in use.
existing_id() {
  id=$(az ad app show --id "$app_id" --query "$1" -o tsv)
  [ -n "$id" ] || id=$(uuidgen | tr 'A-Z' 'a-z')
  echo "$id"
}
admin_role_id=$(existing_id "appRoles[?value=='${admin_role}'].id | [0]")
caller_role_id=$(existing_id "appRoles[?value=='${caller_role}'].id | [0]")
scope_id=$(existing_id "api.oauth2PermissionScopes[?value=='user_impersonation'].id | [0]")

graph="https://graph.microsoft.com/v1.0/applications/${object_id}"
az rest --method PATCH --uri "$graph" --headers Content-Type=application/json --body "{
  \"appRoles\": [
    { \"id\": \"${admin_role_id}\", \"value\": \"${admin_role}\", \"isEnabled\": true,
      \"allowedMemberTypes\": [\"User\", \"Application\"], \"displayName\": \"Registry broker admin\",
      \"description\": \"Manage grants, blocks and stored credentials; read the audit\" },
    { \"id\": \"${caller_role_id}\", \"value\": \"${caller_role}\", \"isEnabled\": true,
      \"allowedMemberTypes\": [\"Application\"], \"displayName\": \"Registry broker caller\",
      \"description\": \"Ask the broker for registry credentials (what a grant allows); no admin right\" } ],
  \"api\": { \"oauth2PermissionScopes\": [{ \"id\": \"${scope_id}\", \"value\": \"user_impersonation\", \"type\": \"Admin\",
    \"isEnabled\": true, \"adminConsentDisplayName\": \"Use the registry broker admin API\",
    \"adminConsentDescription\": \"Lets an operator call the broker's admin API with their own identity.\" }] } }"
# Pre-authorising needs the scope to exist, hence a second request.
az rest --method PATCH --uri "$graph" --headers Content-Type=application/json --body "{
  \"api\": { \"preAuthorizedApplications\": [{ \"appId\": \"${azure_cli}\", \"delegatedPermissionIds\": [\"${scope_id}\"] }] } }"

az ad sp show --id "$app_id" >/dev/null 2>&1 || az ad sp create --id "$app_id" >/dev/null

azd env set BROKER_AUDIENCES "${uri},${app_id}"
azd env set BROKER_AUDIENCE "$uri"
azd env set BROKER_APP_ID "$app_id"
echo "audience ${uri} (client ID ${app_id}): azd env get-value BROKER_AUDIENCE; assign ${admin_role} to operators: docs/operations.md"
