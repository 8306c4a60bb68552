#!/usr/bin/env bash
# Grant a workload identity pull/push on some repositories. Run as an operator who holds the broker's
# admin app role (Broker.Admin); `az login` first.
#   ./grant.sh <grant-id> <principal-id> <registry> <repository-pattern> <actions>
#   ./grant.sh ci-push-web 6f1c…-principal docker.io 'acme/web*' pull,push
set -euo pipefail
: "${BROKER:?set BROKER to the broker API base, e.g. https://my-broker.azurewebsites.net/api}"
: "${BROKER_AUDIENCE:=api://registry-broker}"
id=$1 principal=$2 registry=$3 pattern=$4 actions=$5

token=$(az account get-access-token --resource "$BROKER_AUDIENCE" --query accessToken -o tsv)
body=$(jq -n --arg id "$id" --arg p "$principal" --arg r "$registry" --arg pat "$pattern" --arg a "$actions" \
  '{id: $id, subjects: [{objectId: $p}], registry: $r, repositories: [$pat], actions: ($a | split(",")), maxTtlSeconds: 900}')
curl -sS --fail-with-body -X POST "$BROKER/v1/admin/grants" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body"
echo
