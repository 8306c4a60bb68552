import type { TableClient } from '@azure/data-tables';
import { azureStatus } from './errors.js';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { OpenIdMetadata } from './auth/openIdMetadata.js';


export type CheckState = 'ok' | 'down';
export type HealthReport = Record<'tableStorage' | 'keyVault' | 'identityProvider', CheckState>;

/** Anonymous callers can reach this, so one probe result serves everyone for a few seconds. */
const RESULT_TTL_MS = 10_000;
const PROBE_TIMEOUT_MS = 3_000;

async function probe(check: () => Promise<unknown>): Promise<CheckState> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), timeout]);
    return 'ok';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

export class HealthCheck {
  private last: { at: number; report: Promise<HealthReport> } | undefined;

  constructor(
    private readonly table: TableClient,
    private readonly secrets: SecretClient,
    private readonly metadata: OpenIdMetadata,
  ) {}

  report(): Promise<HealthReport> {
    if (this.last && Date.now() - this.last.at < RESULT_TTL_MS) return this.last.report;
    const report = this.run();
    this.last = { at: Date.now(), report };
    return report;
  }

  private async run(): Promise<HealthReport> {
    const [tableStorage, keyVault, identityProvider] = await Promise.all([
      probe(() => this.tableAnswers()),
      probe(() => this.vaultAnswers()),
      probe(() => this.metadata.all()),
    ]);
    return { tableStorage, keyVault, identityProvider };
  }

  /**
   * The broker may read only the secrets its catalog names (per-secret roles), so listing the vault is
   * refused: a 403 means the vault answered. No answer at all (or no token for it) means down.
   */
  private async vaultAnswers(): Promise<void> {
    try {
      await this.secrets.listPropertiesOfSecrets().byPage({ maxPageSize: 1 }).next();
    } catch (error) {
      if (azureStatus(error) !== 403) throw error;
    }
  }

  /** A new deployment has no grants table until the first grant: "table not found" is an answer too. */
  private async tableAnswers(): Promise<void> {
    try {
      await this.table.listEntities({ queryOptions: { select: ['PartitionKey'] } }).byPage({ maxPageSize: 1 }).next();
    } catch (error) {
      if (azureStatus(error) !== 404) throw error;
    }
  }
}
