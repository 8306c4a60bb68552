import type { TokenCredential } from '@azure/identity';
import { createRequire } from 'node:module';
import { sentByOutboundFetch } from '../http/outboundFetch.js';
import { releaseHeldMeasurements } from './instruments.js';

/**
 * Sends metrics and traces to Application Insights; index.ts calls it only when
 * APPLICATIONINSIGHTS_CONNECTION_STRING is set, so the exporter (and its instrumentations) is imported
 * only then. The Application Insights resource has local authentication off: the broker's own
 * identity authenticates the export (Monitoring Metrics Publisher). Measurements held until now
 * (holdMeasurements) are recorded once it runs, or dropped if it cannot start.
 */
export async function startAzureMonitor(connectionString: string, credential: TokenCredential): Promise<void> {
  try {
    const { useAzureMonitor } = await import('@azure/monitor-opentelemetry');
    // The distro passes the whole object to the HTTP instrumentation, whose options it types narrower.
    const http = { enabled: true, ignoreOutgoingRequestHook: sentByOutboundFetch };
    useAzureMonitor({
      azureMonitorExporterOptions: { connectionString, credential },
      instrumentationOptions: { azureSdk: { enabled: true }, http },
      enableLiveMetrics: false,
    });
    // The Azure SDK instrumentation hands the SDKs its instrumenter when require() next loads
    // @azure/core-tracing; the broker imported it long before, so that happens only here. Without it
    // Table Storage and Key Vault calls make no spans.
    createRequire(import.meta.url)('@azure/core-tracing');
  } finally {
    releaseHeldMeasurements();
  }
}
