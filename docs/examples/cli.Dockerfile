# The registry-broker CLI (one self-contained file, also the docker credential helper) with docker's
# CLI and skopeo: a step image for ACR tasks and a container for ACI. The package is private, so the
# image is built from a checkout of this repository, never fetched from a public registry:
#   az acr build -r myregistry -t registry-broker-cli:0.1.0 -f docs/examples/cli.Dockerfile .
FROM node:22-alpine AS bundle
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund && npm run build:cli

FROM node:22-alpine
RUN apk add --no-cache docker-cli skopeo
COPY --from=bundle /src/dist/registry-broker.mjs /usr/local/bin/registry-broker
RUN chmod 0755 /usr/local/bin/registry-broker && ln -s registry-broker /usr/local/bin/docker-credential-registry-broker
# Docker Hub through the helper for every client that reads a docker config: docker looks it up as the
# first key, skopeo and podman as the second.
RUN mkdir -p /root/.docker && printf '%s\n' '{"credHelpers":{"https://index.docker.io/v1/":"registry-broker","docker.io":"registry-broker"}}' > /root/.docker/config.json
