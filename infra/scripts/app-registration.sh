#!/bin/sh
# azd preprovision hook: find or create the broker's Entra app registration, so that tokens can be
# requested for it (its App ID URI is the audience), operators can sign in to its admin API (a
# user_impersonation scope pre-authorised for the Azure CLI), and it defines the admin app role.
# Idempotent: a second run changes nothing. Needs permission to create app registrations.
set -eu

env_name=${AZURE_ENV_NAME:?run through azd (AZURE_ENV_NAME is not set)}
uri="api://registry-broker-${env_name}"
admin_role=${BROKER_ADMIN_ROLE:-Broker.Admin}
azure_cli=04b07795-8ddb-461a-bbee-02f9e1bf7b46

app_id=$(az ad app list --identifier-uri "$uri" --query '[0].appId' -o tsv)
if [ -z "$app_id" ]; then
  app_id=$(az ad app create --display-name "registry-broker (${env_name})" --identifier-uris "$uri" \
    --sign-in-audience AzureADMyOrg --query appId -o tsv)
  echo "created app registration $app_id ($uri)"
fi
object_id=$(az ad app show --id "$app_id" --query id -o tsv)

# Keep the IDs of an existing role and scope: Entra refuses to change them while they are in use.
role_id=$(az ad app show --id "$app_id" --query "appRoles[?value=='${admin_role}'].id | [0]" -o tsv)
[ -n "$role_id" ] || role_id=$(uuidgen | tr 'A-Z' 'a-z')
scope_id=$(az ad app show --id "$app_id" --query "api.oauth2PermissionScopes[?value=='user_impersonation'].id | [0]" -o tsv)
[ -n "$scope_id" ] || scope_id=$(uuidgen | tr 'A-Z' 'a-z')

graph="https://graph.microsoft.com/v1.0/applications/${object_id}"
az rest --method PATCH --uri "$graph" --headers Content-Type=application/json --body "{
  \"appRoles\": [{ \"id\": \"${role_id}\", \"value\": \"${admin_role}\", \"isEnabled\": true,
    \"allowedMemberTypes\": [\"User\", \"Application\"], \"displayName\": \"Registry broker admin\",
    \"description\": \"Manage grants, blocks and stored credentials; read the audit\" }],
  \"api\": { \"oauth2PermissionScopes\": [{ \"id\": \"${scope_id}\", \"value\": \"user_impersonation\", \"type\": \"Admin\",
    \"isEnabled\": true, \"adminConsentDisplayName\": \"Use the registry broker admin API\",
    \"adminConsentDescription\": \"Lets an operator call the broker's admin API with their own identity.\" }] } }"
# Pre-authorising needs the scope to exist, hence a second request.
az rest --method PATCH --uri "$graph" --headers Content-Type=application/json --body "{
  \"api\": { \"preAuthorizedApplications\": [{ \"appId\": \"${azure_cli}\", \"delegatedPermissionIds\": [\"${scope_id}\"] }] } }"

az ad sp show --id "$app_id" >/dev/null 2>&1 || az ad sp create --id "$app_id" >/dev/null

azd env set BROKER_AUDIENCES "${uri},${app_id}"
echo "BROKER_AUDIENCES=${uri},${app_id}; assign the ${admin_role} role to operators: docs/admin.md"
