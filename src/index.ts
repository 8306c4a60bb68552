import { ConfigError, loadConfig, type BrokerConfig } from './config.js';
import { invalidSettingNames, invalidSettingsHealthRoute } from './functions/health.js';
import { loginCleanupTimer } from './functions/loginCleanupTimer.js';
import { rotationTimer } from './functions/rotationTimer.js';
import { registerAppStart, registerRoutes, registerTimer } from './functionsHost.js';
import { ManagedIdentityCredential } from '@azure/identity';
import { errorSummary, jsonLineLogger } from './logger.js';
import { routes } from './routes.js';
import { createServices } from './services.js';
import { inQuietMoment, type RequestActivity } from './quietMoment.js';
import { startAzureMonitor } from './telemetry/azureMonitor.js';
import { holdMeasurements } from './telemetry/instruments.js';

const log = jsonLineLogger((line) => console.log(line));

/**
 * Settings are validated while the host loads this module. A bad setting registers only
 * /api/v1/health, which answers 503 naming it: a Function App with no functions would answer 404
 * everywhere and tell the operator nothing.
 */
function validSettings(): BrokerConfig | undefined {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const settings = invalidSettingNames(error.problems);
    log.error('broker settings are invalid', { settings, problems: error.problems });
    registerRoutes([invalidSettingsHealthRoute(settings)], () => null);
    return undefined;
  }
}

const config = validSettings();
if (config) {
  const services = createServices(config, log);
  const connectionString = config.applicationInsightsConnectionString;
  // Only when configured, and not in the first answer's way: until the exporter runs, metrics are
  // held in memory and then recorded; spans of the requests before it are not kept.
  let exporterStart: RequestActivity | undefined;
  if (connectionString) {
    holdMeasurements();
    // Inside the promise chain, so that nothing thrown while starting it escapes its timer and ends the worker.
    exporterStart = inQuietMoment(() => {
      Promise.resolve()
        .then(() => startAzureMonitor(connectionString, new ManagedIdentityCredential()))
        .catch((error: unknown) => log.error('telemetry could not start', { error: errorSummary(error) }));
    });
  }
  registerRoutes(routes, () => services, exporterStart);
  registerTimer(rotationTimer, () => services);
  registerTimer(loginCleanupTimer, () => services);
  registerAppStart(() => services.warmUp());
}
