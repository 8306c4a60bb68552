// What an operator is told without configuring anything: log alerts on the broker's own log lines and
// request results, and a workbook of its OpenTelemetry metrics. Alerts fire in the portal at once; an
// e-mail receiver is added when `alertEmail` is given (azd env set ALERT_EMAIL …).
param location string
param tags object
param resourceToken string
param insightsId string
param alertEmail string = ''

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'broker'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [{ name: 'operator', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

// Each alert: a name, why it matters, its KQL over Application Insights, and the threshold that fires it.
var alerts = [
  {
    name: 'audit-write-failed'
    description: 'An audit record could not be written: those requests answered 503 and no token left. Check Table Storage and the broker\'s table roles.'
    severity: 1
    query: 'traces | where message has "audit write failed"'
    threshold: 0
  }
  {
    name: 'rotation-failed'
    description: 'A credential rotation step failed; the old credential is still in use and the step is retried with backoff.'
    severity: 2
    query: 'traces | where message has "credential rotation failed"'
    threshold: 0
  }
  {
    name: 'credential-expires-soon'
    description: 'A stored credential is within its expiry warning (rotateBeforeExpiryDays) and nothing will rotate it.'
    severity: 2
    query: 'traces | where message has "stored credential expires soon"'
    threshold: 0
  }
  {
    name: 'server-errors'
    description: 'More than 5% of the broker\'s answers over 15 minutes were 5xx (a dependency is down or a registry refuses the broker).'
    severity: 2
    query: 'requests | summarize total = count(), failed = countif(toint(resultCode) >= 500) | where total >= 20 and todouble(failed) / total > 0.05'
    threshold: 0
  }
]

resource logAlerts 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for alert in alerts: {
    name: 'alert-${alert.name}-${resourceToken}'
    location: location
    tags: tags
    properties: {
      displayName: 'registry-broker: ${alert.name}'
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [insightsId]
      evaluationFrequency: 'PT5M'
      windowSize: alert.name == 'server-errors' ? 'PT15M' : 'PT5M'
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: alert.threshold
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      actions: { actionGroups: [operators.id] }
    }
  }
]

// The workbook: issuances by outcome and registry, latency, upstream calls and rate limits, Key Vault
// reads, audit write failures, rotations. The metric names are the broker's (src/telemetry/instruments.ts).
var metricTile = [
  { title: 'Issuances by outcome', query: 'customMetrics | where name == "broker.issuances" | extend outcome = tostring(customDimensions.outcome) | summarize sum(valueSum) by outcome, bin(timestamp, 5m) | render timechart' }
  { title: 'Issuances by registry and form', query: 'customMetrics | where name == "broker.issuances" | extend registry = tostring(customDimensions.registry), form = tostring(customDimensions.form) | summarize sum(valueSum) by registry, form' }
  { title: 'Denials by reason', query: 'customMetrics | where name == "broker.issuances" and tostring(customDimensions.outcome) != "issued" | summarize sum(valueSum) by reason = tostring(customDimensions.reason) | top 20 by sum_valueSum' }
  { title: 'Issuance duration (ms)', query: 'customMetrics | where name == "broker.issuance.duration" | summarize avg(valueSum / valueCount), max(valueMax) by bin(timestamp, 5m) | render timechart' }
  { title: 'Upstream calls by registry and status', query: 'customMetrics | where name == "broker.upstream.calls" | summarize sum(valueSum) by registry = tostring(customDimensions.registry), status = tostring(customDimensions.status)' }
  { title: 'Docker Hub rate limit remaining', query: 'customMetrics | where name == "broker.upstream.ratelimit.remaining" | summarize min(valueMin) by registry = tostring(customDimensions.registry), bin(timestamp, 15m) | render timechart' }
  { title: 'Key Vault reads and audit write failures', query: 'customMetrics | where name in ("broker.keyvault.reads", "broker.audit.write_failures") | summarize sum(valueSum) by name, bin(timestamp, 15m) | render timechart' }
  { title: 'Rotation runs by outcome', query: 'customMetrics | where name == "broker.rotation.runs" | summarize sum(valueSum) by registry = tostring(customDimensions.registry), outcome = tostring(customDimensions.outcome)' }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceToken, 'registry-broker-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'registry-broker'
    category: 'workbook'
    sourceId: insightsId
    serializedData: string({
      version: 'Notebook/1.0'
      items: [
        for (tile, i) in metricTile: {
          type: 3
          name: 'tile-${i}'
          content: { version: 'KqlItem/1.0', title: tile.title, query: tile.query, queryType: 0, resourceType: 'microsoft.insights/components' }
        }
      ]
    })
  }
}

output actionGroupId string = operators.id
