import type { TokenCredential } from '@azure/identity';
import * as z from 'zod';
import type { RotationPolicy } from '../../registries/catalog.js';
import { readJson, upstreamFetch } from '../../http/upstreamHttp.js';
import type { CallBudget } from './callBudget.js';
import type { CreateRequest, CreatedCredential, RotationProvider } from './provider.js';

type AcrTokenPolicy = Extract<RotationPolicy, { provider: 'acr-token' }>;

const API_VERSION = '2023-07-01';
const TIMEOUT_MS = 60_000;
const POLL_MS = 500;
const SLOTS = ['password1', 'password2'] as const;

const resultSchema = z.object({
  username: z.string().min(1),
  passwords: z.array(z.object({ name: z.string(), value: z.string().optional() })),
});
const operationSchema = z.object({ status: z.string().optional() }).passthrough();

/**
 * ACR repository-scoped tokens: ARM `generateCredentials` with the broker's managed identity. The
 * two password slots alternate, so the old password keeps working during the grace period; revoking
 * it regenerates its slot and throws the value away.
 */
export class AcrTokenProvider implements RotationProvider {
  constructor(
    private readonly policy: AcrTokenPolicy,
    private readonly identity: TokenCredential,
  ) {}

  async create(request: CreateRequest, budget: CallBudget): Promise<CreatedCredential> {
    // Regenerating the slot in use would kill the only working password: the broker must know it.
    if (!(SLOTS as readonly string[]).includes(request.currentRef ?? '')) {
      throw new Error('the stored ACR token password has no credentialRef tag (password1 or password2), so the slot in use is unknown; tag the secret to enable rotation');
    }
    const slot = request.currentRef === 'password1' ? 'password2' : 'password1';
    const generated = await this.generate(slot, request.expiresAt, budget);
    return { ...generated, ref: slot };
  }

  async revoke(ref: string, budget: CallBudget): Promise<void> {
    if (!(SLOTS as readonly string[]).includes(ref)) throw new Error(`unknown ACR password slot "${ref}"`);
    await this.generate(ref as (typeof SLOTS)[number], new Date(Date.now() + 60_000), budget);
  }

  /** A crashed attempt leaves at most a regenerated slot, which the next `create` overwrites. */
  async revokeStray(): Promise<void> {}

  private async generate(slot: (typeof SLOTS)[number], expiry: Date, budget: CallBudget): Promise<{ username: string; password: string }> {
    const deadline = Math.min(Date.now() + TIMEOUT_MS, budget.deadline);
    const headers = { Authorization: `Bearer ${await this.armToken(budget)}` };
    const url = `${this.policy.armEndpoint}${this.policy.registryResourceId}/generateCredentials?api-version=${API_VERSION}`;
    const json = { tokenId: `${this.policy.registryResourceId}/tokens/${this.policy.tokenName}`, name: slot, expiry: expiry.toISOString() };
    let response = await upstreamFetch({ url, json, headers, deadline, registry: 'Azure Resource Manager' });
    // Long-running operation: 202 with Location, polled until it answers 200 with the result.
    while (response.status === 202) {
      const location = response.headers.get('location') ?? response.headers.get('azure-asyncoperation');
      await response.body?.cancel();
      if (!location) throw new Error('ARM answered 202 without a Location to poll');
      // The bearer token goes along with the poll: only ever to ARM itself.
      if (new URL(location, this.policy.armEndpoint).origin !== new URL(this.policy.armEndpoint).origin) {
        throw new Error('ARM answered 202 with a Location on another host; not following it');
      }
      const wait = Math.min(Number(response.headers.get('retry-after') ?? 0) * 1000 || POLL_MS, 5000, Math.max(0, deadline - Date.now()));
      await new Promise((resolve) => setTimeout(resolve, wait));
      response = await upstreamFetch({ url: new URL(location, this.policy.armEndpoint).toString(), headers, deadline, registry: 'Azure Resource Manager' });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`ARM generateCredentials answered HTTP ${response.status}`);
    }
    const body = await readJson(response, 'Azure Resource Manager');
    const operation = operationSchema.safeParse(body);
    if (operation.success && operation.data.status && operation.data.status !== 'Succeeded') {
      throw new Error(`ARM generateCredentials ended ${operation.data.status}`);
    }
    const result = resultSchema.parse(body);
    const password = result.passwords.find((p) => p.name === slot)?.value;
    if (!password) throw new Error(`ARM generateCredentials returned no value for ${slot}`);
    return { username: result.username, password };
  }

  private async armToken(budget: CallBudget): Promise<string> {
    const token = await this.identity.getToken(`${this.policy.armEndpoint}/.default`, { abortSignal: budget.signal });
    if (!token) throw new Error('no Azure Resource Manager token for the broker identity');
    return token.token;
  }
}
