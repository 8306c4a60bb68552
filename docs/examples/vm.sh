#!/usr/bin/env bash
# On an Azure VM with a managed identity: docker gets a Docker Hub login for acme/web from the broker
# whenever it needs one, through the credential helper. No password on the VM.
#
# Operator, once (a user-assigned identity can be granted before the VM exists; a system-assigned one
# exists once `az vm identity assign` ran):
#   az vm identity assign -g my-rg -n build-vm
#   principal=$(az vm show -g my-rg -n build-vm --query identity.principalId -o tsv)
#   registry-broker admin grants add --id build-vm --registry docker.io --repository acme/web \
#     --action pull --action push --object-id "$principal"
# and copy dist/registry-broker.mjs (`npm ci && npm run build:cli` in a checkout of this repository) to the VM.
set -euo pipefail
: "${REGISTRY_BROKER_URL:?the broker API base: azd env get-value REGISTRY_BROKER_URL}"
: "${REGISTRY_BROKER_AUDIENCE:?the broker audience: azd env get-value BROKER_AUDIENCE}"
export REGISTRY_BROKER_URL REGISTRY_BROKER_AUDIENCE
export REGISTRY_BROKER_SCOPES="repository:acme/web:pull,push"
# export REGISTRY_BROKER_CLIENT_ID=<client ID>   # for a user-assigned identity

# The CLI: one file that needs only Node.js ≥ 20 (the package is private: never `npx` it from a public registry).
sudo install -m 0755 registry-broker.mjs /usr/local/bin/registry-broker
sudo ln -sf registry-broker /usr/local/bin/docker-credential-registry-broker

# Docker asks the helper for Docker Hub (docker's key for it is https://index.docker.io/v1/).
mkdir -p ~/.docker
[ -f ~/.docker/config.json ] || echo '{}' > ~/.docker/config.json
jq '.credHelpers["https://index.docker.io/v1/"] = "registry-broker" | .credHelpers["docker.io"] = "registry-broker"' \
  ~/.docker/config.json > ~/.docker/config.json.new && mv ~/.docker/config.json.new ~/.docker/config.json
docker pull docker.io/acme/web:latest
docker push docker.io/acme/web:latest

# … or plain curl, with nothing installed: IMDS token → broker → registry token (for one quick command).
MI=$(curl -s -H Metadata:true \
  "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=$REGISTRY_BROKER_AUDIENCE" | jq -r .access_token)
curl -s -X POST "$REGISTRY_BROKER_URL/v1/tokens" -H "Authorization: Bearer $MI" -H 'Content-Type: application/json' \
  -d '{"registry":"docker.io","scopes":["repository:acme/web:pull"]}' | jq -r .token
