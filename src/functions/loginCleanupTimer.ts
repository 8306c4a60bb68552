import type { Logger } from '../logger.js';
import type { Services } from '../services.js';

/**
 * Every 30 seconds: delete at the provider the login credentials that expired, that belong to a
 * blocked identity (so one made on an instance that had not yet seen the block is gone within 60 s),
 * or that a crashed create left behind. Expired ones still count against Docker Hub's token limit.
 */
export const loginCleanupTimer = {
  name: 'loginCredentialCleanup',
  schedule: '*/30 * * * * *',
  async run(services: Services, log: Logger): Promise<void> {
    const report = await services.logins.cleanup();
    if (report.deleted > 0 || report.failed > 0) log.info('login credential cleanup', { deleted: report.deleted, failed: report.failed });
  },
};
