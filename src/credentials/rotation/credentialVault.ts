import type { SecretClient } from '@azure/keyvault-secrets';
import { parseCredentialValue, type CredentialValue } from '../secretValue.js';

/**
 * Key Vault for rotation: the stored credential `<name>` (what issuance reads) and a staging secret
 * `<name>-pending` that holds a new credential between its creation and its verification, so a
 * crash never loses a credential that exists upstream. The staging version is disabled once used.
 * Every call takes the run's abort signal, so none outlasts the lease it was made under.
 */
export type StoredCredential = CredentialValue;

export interface CurrentSecret {
  version: string;
  ref: string | undefined;
  createdOn: Date | undefined;
  rotatedAt: Date | undefined;
  expiresOn: Date | undefined;
}

const CONTENT_TYPE = 'application/json';

export const pendingName = (name: string) => `${name}-pending`;

export class CredentialVault {
  constructor(private readonly secrets: SecretClient) {}

  async current(name: string, abortSignal: AbortSignal): Promise<CurrentSecret> {
    const secret = await this.secrets.getSecret(name, { abortSignal });
    const tags = secret.properties.tags ?? {};
    return {
      version: secret.properties.version ?? '',
      ref: tags.credentialRef,
      createdOn: secret.properties.createdOn,
      rotatedAt: tags.rotatedAt ? new Date(tags.rotatedAt) : undefined,
      expiresOn: secret.properties.expiresOn,
    };
  }

  async stage(name: string, credential: StoredCredential, tags: Record<string, string>, abortSignal: AbortSignal): Promise<string> {
    const stored = await this.secrets.setSecret(pendingName(name), JSON.stringify(credential), { contentType: CONTENT_TYPE, tags, abortSignal });
    return stored.properties.version ?? '';
  }

  async staged(name: string, version: string, abortSignal: AbortSignal): Promise<StoredCredential> {
    const secret = await this.secrets.getSecret(pendingName(name), { version, abortSignal });
    return parseCredentialValue(secret.value, pendingName(name));
  }

  async discardStaged(name: string, version: string, abortSignal: AbortSignal): Promise<void> {
    await this.secrets.updateSecretProperties(pendingName(name), version, { enabled: false, abortSignal });
  }

  async store(name: string, credential: StoredCredential, tags: Record<string, string>, expiresOn: Date, abortSignal: AbortSignal): Promise<string> {
    const stored = await this.secrets.setSecret(name, JSON.stringify(credential), { contentType: CONTENT_TYPE, tags, expiresOn, abortSignal });
    return stored.properties.version ?? '';
  }
}
