import type { TokenCredential } from '@azure/identity';
import { createRequire } from 'node:module';
import { releaseHeldMeasurements } from './instruments.js';

/**
 * Sends metrics and traces to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set.
 * The exporter (and its instrumentations) is imported only then, so a broker without it starts as
 * fast as before. The Application Insights resource has local authentication off: the broker's own
 * identity authenticates the export (Monitoring Metrics Publisher). Measurements held until now
 * (holdMeasurements) are recorded once it runs, or dropped if it cannot start.
 */
export async function startAzureMonitor(connectionString: string | undefined, credential: TokenCredential): Promise<boolean> {
  if (!connectionString) return false;
  try {
    const { useAzureMonitor } = await import('@azure/monitor-opentelemetry');
    useAzureMonitor({
      azureMonitorExporterOptions: { connectionString, credential },
      instrumentationOptions: { azureSdk: { enabled: true }, http: { enabled: true } },
      enableLiveMetrics: false,
    });
    // The Azure SDK instrumentation hands the SDKs its instrumenter when require() next loads
    // @azure/core-tracing; the broker imported it long before, so that happens only here. Without it
    // Table Storage and Key Vault calls make no spans.
    createRequire(import.meta.url)('@azure/core-tracing');
    return true;
  } finally {
    releaseHeldMeasurements();
  }
}
