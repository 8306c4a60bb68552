#!/usr/bin/env bash
# Grant a workload identity pull/push on some repositories, with curl and the operator's own sign-in.
# Run as an operator who holds the broker's admin app role (docs/admin.md); `az login` first. The
# broker URL and audience come from the azd environment that deployed it.
#   ./grant.sh <grant-id> <principal-id> <registry> <repository-pattern> <actions>
#   ./grant.sh ci-push-web "$(az identity show -g my-rg -n build-web --query principalId -o tsv)" docker.io 'acme/web*' pull,push
# No maxTtlSeconds: a cap below the registry's own token lifetime fails every issuance (ACR access
# tokens live 75 minutes); the broker's MAX_TTL_SECONDS applies. Add one only if you mean it.
set -euo pipefail
: "${BROKER:=$(azd env get-value REGISTRY_BROKER_URL)}"
: "${BROKER_AUDIENCE:=$(azd env get-value BROKER_AUDIENCE)}"
id=$1 principal=$2 registry=$3 pattern=$4 actions=$5

token=$(az account get-access-token --resource "$BROKER_AUDIENCE" --query accessToken -o tsv)
body=$(jq -n --arg id "$id" --arg p "$principal" --arg r "$registry" --arg pat "$pattern" --arg a "$actions" \
  '{id: $id, subjects: [{objectId: $p}], registry: $r, repositories: [$pat], actions: ($a | split(","))}')
curl -sS --fail-with-body -X POST "$BROKER/v1/admin/grants" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body"
echo
