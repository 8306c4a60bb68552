import type { SecretClient } from '@azure/keyvault-secrets';
import * as z from 'zod';
import type { RotationPolicy } from '../../registries/catalog.js';
import { readJson, upstreamFetch } from '../../http/upstreamHttp.js';
import { parseCredentialValue } from '../secretValue.js';
import type { CallBudget } from './callBudget.js';
import type { CreateRequest, CreatedCredential, RotationProvider } from './provider.js';

type DockerHubPolicy = Extract<RotationPolicy, { provider: 'dockerhub' }>;

const signInSchema = z.object({ access_token: z.string().min(1) });
const createdSchema = z.object({ uuid: z.string().min(1), token: z.string().min(1) });
const listSchema = z.object({ next: z.string().nullable().optional(), results: z.array(z.object({ uuid: z.string(), token_label: z.string() })) });

const TIMEOUT_MS = 20_000;

/**
 * Docker Hub access tokens. An access token cannot create access tokens, so the provider signs in
 * with the account password kept in its own Key Vault secret (`adminSecret`). That secret is read
 * fresh for each call and never cached or used for issuance.
 */
export class DockerHubProvider implements RotationProvider {
  constructor(
    private readonly policy: DockerHubPolicy,
    private readonly secrets: SecretClient,
  ) {}

  async create(request: CreateRequest, budget: CallBudget): Promise<CreatedCredential> {
    const { username, bearer } = await this.signIn(budget);
    const response = await this.call(budget, 'POST', '/v2/access-tokens', bearer, {
      token_label: request.label,
      scopes: this.policy.tokenScopes,
      expires_at: request.expiresAt.toISOString(),
    });
    const created = createdSchema.parse(response);
    return { username, password: created.token, ref: created.uuid };
  }

  async revoke(ref: string, budget: CallBudget): Promise<void> {
    const { bearer } = await this.signIn(budget);
    await this.revokeWith(budget, bearer, ref);
  }

  async revokeStray(label: string, keep: readonly string[], budget: CallBudget): Promise<void> {
    const { bearer } = await this.signIn(budget);
    let path: string | undefined = '/v2/access-tokens?page_size=100';
    while (path) {
      const page = listSchema.parse(await this.call(budget, 'GET', path, bearer));
      for (const token of page.results) {
        if (token.token_label === label && !keep.includes(token.uuid)) await this.revokeWith(budget, bearer, token.uuid);
      }
      path = page.next ? new URL(page.next).pathname + new URL(page.next).search : undefined;
    }
  }

  /** Deleting a token that is already gone succeeds: revocation is safe to repeat after a crash. */
  private async revokeWith(budget: CallBudget, bearer: string, uuid: string): Promise<void> {
    await this.call(budget, 'DELETE', `/v2/access-tokens/${encodeURIComponent(uuid)}`, bearer, undefined, [404]);
  }

  private async signIn(budget: CallBudget): Promise<{ username: string; bearer: string }> {
    const secret = await this.secrets.getSecret(this.policy.adminSecret, { abortSignal: budget.signal });
    const admin = parseCredentialValue(secret.value, this.policy.adminSecret);
    const answer = signInSchema.parse(await this.call(budget, 'POST', '/v2/auth/token', undefined, { identifier: admin.username, secret: admin.password }, [], true));
    return { username: admin.username, bearer: answer.access_token };
  }

  /** `idempotent`: signing in may be repeated; creating a token may not (a lost answer would make a twin). */
  private async call(budget: CallBudget, method: string, path: string, bearer: string | undefined, json?: unknown, tolerated: number[] = [], idempotent?: boolean): Promise<unknown> {
    const response = await upstreamFetch({
      url: `${this.policy.apiEndpoint}${path}`,
      method,
      json,
      ...(idempotent === undefined ? {} : { idempotent }),
      headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
      deadline: Math.min(Date.now() + TIMEOUT_MS, budget.deadline),
      registry: 'Docker Hub API',
    });
    if (tolerated.includes(response.status)) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`Docker Hub API ${method} ${path.split('?')[0]} answered HTTP ${response.status}`);
    }
    if (response.status === 204 || method === 'DELETE') {
      await response.body?.cancel();
      return undefined;
    }
    return readJson(response, 'Docker Hub API');
  }
}
