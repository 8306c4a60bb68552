#!/usr/bin/env bash
# On an Azure VM with a managed identity: log docker in to Docker Hub for acme/web, pull-only.
#
# Operator, once:
#   az vm identity assign -g my-rg -n build-vm
#   principal=$(az vm show -g my-rg -n build-vm --query identity.principalId -o tsv)
#   ./grant.sh build-vm-pull "$principal" docker.io acme/web pull
set -euo pipefail
export REGISTRY_BROKER_URL=https://my-broker.azurewebsites.net/api
export REGISTRY_BROKER_AUDIENCE=api://registry-broker

# Either the CLI (npm i -g registry-broker) …
registry-broker docker-login --registry docker.io --scope repository:acme/web:pull
docker pull docker.io/acme/web:latest

# … or plain curl, with nothing installed: IMDS token → broker → registry token.
MI=$(curl -s -H Metadata:true \
  "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=$REGISTRY_BROKER_AUDIENCE" | jq -r .access_token)
curl -s -X POST "$REGISTRY_BROKER_URL/v1/tokens" -H "Authorization: Bearer $MI" -H 'Content-Type: application/json' \
  -d '{"registry":"docker.io","scopes":["repository:acme/web:pull"]}' | jq -r .token
