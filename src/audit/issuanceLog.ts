import type { AuditWriter } from './auditWriter.js';
import { issuanceIndexKeys, type IndexMarker } from './indexKeys.js';
import { encodeRecord } from './entityCodec.js';
import { issuanceRecordSchema, type IssuanceRecord } from './issuanceRecord.js';

/** Issued records and refusals go in separate lanes of the writer (see AuditWriter). */
export const ISSUANCE_LANES = ['issued', 'refused'] as const;

/** The `issuances` table: every decision on POST /v1/tokens, written before the answer leaves. */
export class IssuanceLog {
  constructor(
    private readonly writer: AuditWriter,
    private readonly marker: IndexMarker,
  ) {}

  /** Readies the tables before the first record needs them (a cold instance's warm-up). */
  prepare(): Promise<void> {
    return this.writer.prepare();
  }

  /** `deadline`: when the request waiting on this record must answer (epoch ms). */
  record(record: IssuanceRecord, deadline?: number): Promise<void> {
    this.marker.ensure();
    // Issued records travel in transactions of their own: a burst of denials can never fail an issuance.
    const index = { keys: issuanceIndexKeys(record), fields: record };
    return this.writer.write(record.time, record.issuanceId, encodeRecord(issuanceRecordSchema, record), record.outcome === 'issued' ? 'issued' : 'refused', index, deadline);
  }
}
