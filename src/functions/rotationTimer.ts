import type { Logger } from '../logger.js';
import { telemetry } from '../telemetry/instruments.js';
import type { Services } from '../services.js';

/**
 * Every 15 minutes: rotate what is due, finish rotations whose grace period is over, and warn about
 * stored credentials that expire soon (the only thing to do for kinds that cannot be rotated by API).
 */
export const rotationTimer = {
  name: 'credentialRotation',
  schedule: '0 */15 * * * *',
  async run(services: Services, log: Logger): Promise<void> {
    for (const report of await services.rotation.runDue()) {
      telemetry.rotationRun(report.registry, report.outcome);
      if (report.outcome === 'not-due' || report.outcome === 'not-managed') continue;
      const line = { registry: report.registry, outcome: report.outcome, step: report.step, rotationId: report.rotationId, detail: report.detail };
      if (report.outcome === 'failed') log.error('credential rotation failed', line);
      else log.info('credential rotation', line);
    }
    for (const status of await services.rotation.status()) {
      if (status.warning) log.warn('stored credential expires soon', { registry: status.registry, secret: status.credentialSecret, warning: status.warning });
    }
  },
};
