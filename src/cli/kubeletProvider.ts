import * as z from 'zod';
import { CliError } from './brokerClient.js';
import { loadHelperConfig } from './helperConfig.js';
import { parseImage } from './imageReference.js';
import { issueLogin } from './issue.js';
import { readStdin } from './stdin.js';

/**
 * `registry-broker kubelet-credential-provider`: the kubelet's exec credential-provider plugin
 * (credentialprovider.kubelet.k8s.io/v1). The kubelet sends the image it is about to pull; the
 * answer is a login credential for pull on exactly that image's repository, which the kubelet keeps
 * for half the credential's life. Broker, audience and client id come from the environment the
 * kubelet's CredentialProviderConfig sets (or the helper's config file).
 */
const API_VERSION = 'credentialprovider.kubelet.k8s.io/v1';

const requestSchema = z.looseObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('CredentialProviderRequest'),
  image: z.string().min(1).max(1024),
});

export async function runKubeletProvider(): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(await readStdin());
  } catch {
    throw new CliError('standard input is not a JSON CredentialProviderRequest');
  }
  const request = requestSchema.safeParse(body);
  if (!request.success) throw new CliError(`not a ${API_VERSION} CredentialProviderRequest (${request.error.issues[0]?.path.join('.')}: ${request.error.issues[0]?.message})`);
  const image = parseImage(request.data.image);
  if (!image) throw new CliError(`cannot tell the repository of image "${request.data.image.slice(0, 200)}"`);
  const config = await loadHelperConfig();
  const login = await issueLogin({
    broker: config.broker,
    audience: config.audience,
    ...(config.clientId ? { clientId: config.clientId } : {}),
    registry: image.registry,
    scopes: [`repository:${image.repository}:pull`],
  });
  const response = {
    apiVersion: API_VERSION,
    kind: 'CredentialProviderResponse',
    // The credential is good for this repository only, so the kubelet must not reuse it for others.
    cacheKeyType: 'Image',
    cacheDuration: `${Math.floor(login.expiresIn / 2)}s`,
    auth: { [`${image.host}/${image.repository}`]: { username: login.username, password: login.password } },
  };
  process.stdout.write(`${JSON.stringify(response)}\n`);
}
