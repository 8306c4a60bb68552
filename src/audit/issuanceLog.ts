import type { AuditWriter } from './auditWriter.js';
import { issuanceIndexKeys, type IndexMarker } from './indexKeys.js';
import type { IssuanceRecord } from './issuanceRecord.js';

/** Issued records and refusals go in separate lanes of the writer (see AuditWriter). */
export const ISSUANCE_LANES = ['issued', 'refused'] as const;

/** The `issuances` table: every decision on POST /v1/tokens, written before the answer leaves. */
export class IssuanceLog {
  constructor(
    private readonly writer: AuditWriter,
    private readonly marker: IndexMarker,
  ) {}

  record(record: IssuanceRecord): Promise<void> {
    this.marker.ensure();
    const fields: Record<string, unknown> = {
      issuanceId: record.issuanceId,
      requestId: record.requestId,
      time: record.time,
      outcome: record.outcome,
      reason: record.reason,
      status: record.status,
      tenantId: record.tenantId,
      objectId: record.objectId,
      appId: record.appId,
      registry: record.registry,
      requestedScopes: JSON.stringify(record.requestedScopes),
      grantedScopes: JSON.stringify(record.grantedScopes),
      grantIds: JSON.stringify(record.grantIds),
      expiresAt: record.expiresAt,
      latencyMs: record.latencyMs,
      clientIp: record.clientIp,
      tokenFingerprint: record.tokenFingerprint,
      tokenReused: record.tokenReused,
      credentialVersion: record.credentialVersion,
      upstreamScope: record.upstreamScope,
      form: record.form,
      credentialId: record.credentialId,
    };
    const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
    // Issued records travel in transactions of their own: a burst of denials can never fail an issuance.
    return this.writer.write(record.time, record.issuanceId, defined, record.outcome === 'issued' ? 'issued' : 'refused', issuanceIndexKeys(record));
  }
}
