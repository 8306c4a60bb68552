import type { SecretClient } from '@azure/keyvault-secrets';
import * as z from 'zod';
import { BrokerError } from '../../errors.js';
import type { LoginPolicy } from '../../registries/catalog.js';
import { formatScope, type Action, type RepositoryScope } from '../../registries/scope.js';
import { jwtExpiry } from '../../registries/upstreamTokens.js';
import { parseCredentialValue } from '../secretValue.js';
import { loginProblems } from './loginProblems.js';
import { loginLabel, type CreatedLogin, type LoginCreateRequest, type LoginProvider, type LoginRef } from './provider.js';
import { providerCall } from './providerHttp.js';

type OatPolicy = Extract<LoginPolicy, { provider: 'dockerhub-oat' }>;

/**
 * Docker Hub's repository scopes for organization access tokens (docs.docker.com, "Access token
 * reference"). Each includes the ones before it: push grants pull, delete grants push.
 */
const SCOPE_FOR: Record<Action, string> = { pull: 'scope-image-pull', push: 'scope-image-push', delete: 'scope-image-delete' };
const IMPLIED: Record<Action, Action[]> = { pull: [], push: ['pull'], delete: ['pull', 'push'] };

const PROVIDER = 'Docker Hub API';
const signInSchema = z.object({ access_token: z.string().min(1).optional(), token: z.string().min(1).optional() });
const createdSchema = z.object({ id: z.string().min(1), token: z.string().min(1), expires_at: z.string().nullable().optional() });
const listSchema = z.object({ next: z.string().nullable().optional(), results: z.array(z.object({ id: z.string(), label: z.string() })) });

/** A Hub session is reused this long at most (less if its JWT says so), so most creates cost one call. */
const SESSION_MS = 5 * 60_000;
const MAX_LIST_PAGES = 20;

/**
 * Docker Hub organization access tokens: `docker login -u <organization>` with the token as password.
 * One token per credential, its resources exactly the requested repositories and actions, `expires_at`
 * from the lifetime, the label carrying the issuance id. The Hub API is signed in to with an owner's
 * credential from its own Key Vault secret (`apiSecret`), never the registry secret.
 */
export class DockerHubOatProvider implements LoginProvider {
  readonly name = 'dockerhub-oat' as const;
  private session: { bearer: string; until: number } | undefined;
  private signingIn: Promise<string> | undefined;

  constructor(
    private readonly policy: OatPolicy,
    private readonly secrets: SecretClient,
    private readonly timeoutMs: number,
  ) {}

  check(scopes: RepositoryScope[]): void {
    const outside = scopes.filter((scope) => !scope.repository.startsWith(`${this.policy.organization}/`)).map((scope) => scope.repository);
    if (outside.length > 0) {
      throw loginProblems.scopeUnsupported(`Docker Hub organization access tokens reach only ${this.policy.organization}/… repositories, not ${outside.join(', ')}.`);
    }
    // A scope that includes another would grant what was not asked for: only "pull", "pull,push", "pull,push,delete" are exact.
    const inexact = scopes.filter((scope) => scope.actions.some((action) => IMPLIED[action].some((implied) => !scope.actions.includes(implied))));
    if (inexact.length > 0) {
      throw loginProblems.scopeUnsupported(
        `On Docker Hub push includes pull and delete includes push, so ${inexact.map(formatScope).join(' ')} cannot be granted exactly; ask for the included actions too.`,
      );
    }
  }

  async create(request: LoginCreateRequest): Promise<CreatedLogin> {
    const deadline = Date.now() + this.timeoutMs;
    const answer = await this.withSession(deadline, (bearer) =>
      providerCall({
        provider: PROVIDER,
        method: 'POST',
        url: this.orgUrl('/access-tokens'),
        headers: { Authorization: `Bearer ${bearer}` },
        json: {
          label: loginLabel(request.issuanceId),
          description: request.description.slice(0, 200),
          resources: request.scopes.map((scope) => ({ type: 'TYPE_REPO', path: scope.repository, scopes: scope.actions.map((action) => SCOPE_FOR[action]) })),
          expires_at: request.expiresAt.toISOString(),
        },
        // A lost answer may still have made a token: not sent twice (cleanup finds it by its label).
        idempotent: false,
        deadline,
      }),
    );
    const created = createdSchema.safeParse(answer.body);
    if (!created.success) throw loginProblems.broken(`${PROVIDER} gave no usable organization access token.`);
    const expiresAt = created.data.expires_at ? new Date(created.data.expires_at) : undefined;
    if (!expiresAt || Number.isNaN(expiresAt.getTime())) {
      // A token without an expiry would outlive every promise the broker makes: it is not handed out.
      await this.delete({ issuanceId: request.issuanceId, credentialId: created.data.id }).catch(() => undefined);
      throw loginProblems.broken(`${PROVIDER} created a token without an expiry; it was deleted.`);
    }
    return { credentialId: created.data.id, username: this.policy.organization, password: created.data.token, expiresAt };
  }

  async delete(ref: LoginRef): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    const ids = ref.credentialId !== undefined ? [ref.credentialId] : await this.findByLabel(loginLabel(ref.issuanceId), deadline);
    for (const id of ids) {
      await this.withSession(deadline, (bearer) =>
        providerCall({
          provider: PROVIDER,
          method: 'DELETE',
          url: this.orgUrl(`/access-tokens/${encodeURIComponent(id)}`),
          headers: { Authorization: `Bearer ${bearer}` },
          tolerated: [404],
          deadline,
        }),
      );
    }
  }

  private async findByLabel(label: string, deadline: number): Promise<string[]> {
    const found: string[] = [];
    let url: string | undefined = this.orgUrl('/access-tokens?page=1&page_size=100');
    for (let page = 0; url && page < MAX_LIST_PAGES; page++) {
      const current: string = url;
      const answer = await this.withSession(deadline, (bearer) => providerCall({ provider: PROVIDER, method: 'GET', url: current, headers: { Authorization: `Bearer ${bearer}` }, deadline }));
      const parsed = listSchema.safeParse(answer.body);
      if (!parsed.success) throw loginProblems.broken(`${PROVIDER} answered a token list the broker cannot read.`);
      found.push(...parsed.data.results.filter((token) => token.label === label).map((token) => token.id));
      // The bearer goes along with `next`: only ever to the configured API host.
      url = parsed.data.next && new URL(parsed.data.next).origin === new URL(this.policy.apiEndpoint).origin ? parsed.data.next : undefined;
    }
    return found;
  }

  private orgUrl(path: string): string {
    return `${this.policy.apiEndpoint}/v2/orgs/${encodeURIComponent(this.policy.organization)}${path}`;
  }

  /** Runs a call with a Hub session; a session the Hub no longer accepts (401) is replaced once. */
  private async withSession<T>(deadline: number, call: (bearer: string) => Promise<T>): Promise<T> {
    const bearer = await this.bearer(deadline);
    try {
      return await call(bearer);
    } catch (error) {
      if (!(error instanceof BrokerError && error.reason === 'login-provider-refused:401')) throw error;
      this.session = undefined;
      return call(await this.bearer(deadline));
    }
  }

  private bearer(deadline: number): Promise<string> {
    if (this.session && Date.now() < this.session.until) return Promise.resolve(this.session.bearer);
    this.signingIn ??= this.signIn(deadline).finally(() => {
      this.signingIn = undefined;
    });
    return this.signingIn;
  }

  private async signIn(deadline: number): Promise<string> {
    let owner;
    try {
      const secret = await this.secrets.getSecret(this.policy.apiSecret);
      owner = parseCredentialValue(secret.value, this.policy.apiSecret);
    } catch (error) {
      throw loginProblems.unavailable(`The Docker Hub API credential (Key Vault secret "${this.policy.apiSecret}") could not be read: ${error instanceof Error ? error.name : 'error'}.`);
    }
    const answer = await providerCall({
      provider: PROVIDER,
      method: 'POST',
      url: `${this.policy.apiEndpoint}/v2/auth/token`,
      headers: {},
      json: { identifier: owner.username, secret: owner.password },
      idempotent: true,
      deadline,
    });
    const parsed = signInSchema.safeParse(answer.body);
    const bearer = parsed.success ? (parsed.data.access_token ?? parsed.data.token) : undefined;
    if (!bearer) throw loginProblems.broken(`${PROVIDER} sign-in gave no access token.`);
    const now = Date.now();
    this.session = { bearer, until: Math.min(now + SESSION_MS, (jwtExpiry(bearer) ?? Infinity) - 30_000) };
    return bearer;
  }
}
