import { createHash } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import * as z from 'zod';
import type { LoginPolicy } from '../../registries/catalog.js';
import type { Action, RepositoryScope } from '../../registries/scope.js';
import { loginProblems } from './loginProblems.js';
import type { CreatedLogin, LoginCreateRequest, LoginProvider, LoginRef } from './provider.js';
import { providerCall, type ProviderAnswer } from './providerHttp.js';

type ScopeMapPolicy = Extract<LoginPolicy, { provider: 'acr-scope-map' }>;

const API_VERSION = '2023-07-01';
const PROVIDER = 'Azure Resource Manager';
const POLL_MS = 500;
/** ACR's repository permissions for the distribution actions. */
const CONTENT: Record<Action, string> = { pull: 'content/read', push: 'content/write', delete: 'content/delete' };

const scopeMapSchema = z.object({ properties: z.object({ actions: z.array(z.string()).optional() }).optional() });
const operationSchema = z.object({ status: z.string().optional() }).passthrough();
const credentialsSchema = z.object({
  username: z.string().min(1),
  passwords: z.array(z.object({ name: z.string(), value: z.string().optional(), expiry: z.string().optional() })),
});

/** The scope-map actions for exactly this scope set, in a canonical order. */
export function scopeMapActions(scopes: RepositoryScope[]): string[] {
  return scopes.flatMap((scope) => scope.actions.map((action) => `repositories/${scope.repository}/${CONTENT[action]}`)).sort();
}

/** Named after its actions, so an identical scope set finds the scope map made for it before. */
export function scopeMapName(actions: string[]): string {
  return `rb-${createHash('sha256').update(actions.join('\n')).digest('hex').slice(0, 40)}`;
}

/** Token names carry the issuance id (ACR: 5–50 letters, digits, dashes), so ARM's activity log leads to our audit. */
export function acrTokenName(issuanceId: string): string {
  return `rb-${issuanceId.toLowerCase()}`;
}

/**
 * ACR repository-scoped tokens through ARM with the broker's managed identity: a scope map for
 * exactly the scope set (an identical one is reused), a token bound to it, and a password from
 * `generateCredentials` with `expiry`. The username is the token name; deleting the token kills
 * its passwords at once.
 */
export class AcrScopeMapProvider implements LoginProvider {
  readonly name = 'acr-scope-map' as const;

  constructor(
    private readonly policy: ScopeMapPolicy,
    private readonly identity: TokenCredential,
    private readonly timeoutMs: number,
  ) {}

  check(): void {}

  async create(request: LoginCreateRequest): Promise<CreatedLogin> {
    const deadline = Date.now() + this.timeoutMs;
    const headers = { Authorization: `Bearer ${await this.armToken(deadline)}` };
    const actions = scopeMapActions(request.scopes);
    const mapName = scopeMapName(actions);
    const mapUrl = this.url(`/scopeMaps/${mapName}`);
    const existing = await providerCall({ provider: PROVIDER, method: 'GET', url: mapUrl, headers, tolerated: [404], deadline });
    const existingActions = scopeMapSchema.safeParse(existing.body).data?.properties?.actions?.slice().sort();
    if (existing.status === 404 || existingActions?.join('\n') !== actions.join('\n')) {
      await this.lro(
        await providerCall({ provider: PROVIDER, method: 'PUT', url: mapUrl, headers, json: { properties: { description: 'registry-broker login credentials', actions } }, idempotent: true, deadline }),
        headers,
        deadline,
      );
    }
    const tokenName = acrTokenName(request.issuanceId);
    const tokenId = `${this.policy.registryResourceId}/tokens/${tokenName}`;
    await this.lro(
      await providerCall({
        provider: PROVIDER,
        method: 'PUT',
        url: this.url(`/tokens/${tokenName}`),
        headers,
        json: { properties: { scopeMapId: `${this.policy.registryResourceId}/scopeMaps/${mapName}`, status: 'enabled' } },
        idempotent: true,
        deadline,
      }),
      headers,
      deadline,
    );
    const generated = await this.lro(
      await providerCall({
        provider: PROVIDER,
        method: 'POST',
        url: this.url('/generateCredentials'),
        headers,
        json: { tokenId, name: 'password1', expiry: request.expiresAt.toISOString() },
        idempotent: true,
        deadline,
      }),
      headers,
      deadline,
      'location',
    );
    const result = credentialsSchema.safeParse(generated);
    const password = result.data?.passwords.find((entry) => entry.name === 'password1');
    const expiresAt = password?.expiry ? new Date(password.expiry) : undefined;
    if (!result.success || !password?.value || !expiresAt || Number.isNaN(expiresAt.getTime())) {
      await this.delete({ issuanceId: request.issuanceId, credentialId: tokenName }).catch(() => undefined);
      throw loginProblems.broken(`${PROVIDER} generateCredentials gave no password with an expiry; the token was deleted.`);
    }
    return { credentialId: tokenName, username: result.data.username, password: password.value, expiresAt };
  }

  async delete(ref: LoginRef): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    const headers = { Authorization: `Bearer ${await this.armToken(deadline)}` };
    const name = ref.credentialId ?? acrTokenName(ref.issuanceId);
    await providerCall({ provider: PROVIDER, method: 'DELETE', url: this.url(`/tokens/${name}`), headers, tolerated: [404], deadline });
  }

  private url(path: string): string {
    return `${this.policy.armEndpoint}${this.policy.registryResourceId}${path}?api-version=${API_VERSION}`;
  }

  /**
   * ARM long-running operations: 201/202 naming where to poll. A PUT's outcome is read from
   * Azure-AsyncOperation, a POST action's result from Location (it answers 202 until done).
   */
  private async lro(answer: ProviderAnswer, headers: Record<string, string>, deadline: number, resultAt: 'location' | 'azure-asyncoperation' = 'azure-asyncoperation'): Promise<unknown> {
    const other = resultAt === 'location' ? 'azure-asyncoperation' : 'location';
    const location = answer.headers.get(resultAt) ?? answer.headers.get(other);
    if (answer.status !== 202 && !(answer.status === 201 && location)) return answer.body;
    if (!location) throw loginProblems.broken(`${PROVIDER} answered 202 without a Location to poll.`);
    // The bearer token goes along with the poll: only ever to ARM itself.
    const target = new URL(location, this.policy.armEndpoint);
    if (target.origin !== new URL(this.policy.armEndpoint).origin) throw loginProblems.broken(`${PROVIDER} named an operation on another host; not following it.`);
    const wait = Math.min(Number(answer.headers.get('retry-after') ?? 0) * 1000 || POLL_MS, 5000);
    for (;;) {
      if (Date.now() + wait >= deadline) throw loginProblems.timeout(PROVIDER);
      await new Promise((resolve) => setTimeout(resolve, wait));
      const polled = await providerCall({ provider: PROVIDER, method: 'GET', url: target.toString(), headers, deadline });
      if (polled.status === 202) continue;
      const status = operationSchema.safeParse(polled.body).data?.status;
      if (status === 'Failed' || status === 'Canceled') throw loginProblems.broken(`${PROVIDER} operation ended ${status}.`);
      if (status === undefined || status === 'Succeeded') return polled.body;
    }
  }

  /** The managed-identity endpoint is one more thing that can hang: its wait ends with the request's. */
  private async armToken(deadline: number): Promise<string> {
    try {
      const token = await this.identity.getToken(`${this.policy.armEndpoint}/.default`, { abortSignal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
      if (token) return token.token;
    } catch {
      // reported below, without the identity library's message (it can quote endpoints and claims)
    }
    throw loginProblems.unavailable('The broker could not get an Azure Resource Manager token for its managed identity.');
  }
}
