import type { AuditWriter } from './auditWriter.js';
import type { IssuanceRecord } from './issuanceRecord.js';

/** The `issuances` table: every decision on POST /v1/tokens, written before the answer leaves. */
export class IssuanceLog {
  constructor(private readonly writer: AuditWriter) {}

  record(record: IssuanceRecord): Promise<void> {
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
    };
    const defined = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
    return this.writer.write(record.time, record.issuanceId, defined);
  }
}
