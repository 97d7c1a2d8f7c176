// Lesson 4: the load-test comparison.
//
// The same load against the serial server and against the cluster, as one table.
// measure() sends a load to a URL with loadtest's API and turns the result into a row
// with the columns of the published table; formatTable() puts two rows side by side.
// `npm run compare` is built from these functions.
import { loadTest, type LoadTestResult } from 'loadtest';
import { hangUpAfter } from '../../scripts/lib/load.ts';

// The published run's load was `loadtest -c 10 --rps 100 -n 500`; this adds a timeout.
export interface Load {
  // Clients to start with. At a fixed rate loadtest adds a client whenever all are waiting.
  concurrency: number;
  // Requests per second, sent whether or not answers come back. 0 for a closed loop:
  // each client sends its next request when its last one ends.
  rps: number;
  requests: number;
  // A client gives up on a request after this long, and the request counts as an error.
  timeoutMs: number;
}

// One run, in the published table's columns, then three percentiles.
export interface Row {
  errors: number;
  meanLatencyMs: number;
  // Answers per second: requests answered without an error, over the duration.
  effectiveRps: number;
  completed: number;
  seconds: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

export interface Metric {
  key: keyof Row;
  label: string;
  format: (value: number) => string;
}

// How each field prints, in the published table's order.
export const METRICS: Metric[] = [
  { key: 'errors', label: 'errors', format: (n) => n.toFixed(0) },
  { key: 'meanLatencyMs', label: 'mean latency', format: (n) => `${n.toFixed(1)} ms` },
  { key: 'effectiveRps', label: 'effective rps', format: (n) => n.toFixed(0) },
  { key: 'completed', label: 'completed', format: (n) => n.toFixed(0) },
  { key: 'seconds', label: 'duration', format: (n) => `${n.toFixed(3)} s` },
  { key: 'p50Ms', label: 'p50 latency', format: (n) => `${n.toFixed(0)} ms` },
  { key: 'p95Ms', label: 'p95 latency', format: (n) => `${n.toFixed(0)} ms` },
  { key: 'p99Ms', label: 'p99 latency', format: (n) => `${n.toFixed(0)} ms` },
];

// `cluster` as a multiple of `serial`; a dash where there is nothing to divide by.
export function formatRatio(cluster: number, serial: number): string {
  const ratio = cluster / serial;
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–';
}

export async function measure(url: string, load: Load, onFinish?: (failed: boolean) => void): Promise<Row> {
  // TODO: Send the load with loadTest() from 'loadtest' and await its result. Its options
  // are url, concurrency, requestsPerSecond, maxRequests, and quiet: true.
  // TODO: Give up on a request after load.timeoutMs: pass requestGenerator:
  // hangUpAfter(load.timeoutMs), not loadtest's timeout option (the README says why).
  // TODO: Tell onFinish about every request as it ends. Use loadtest's
  // statusCallback(error, result): error is null for an answer.
  const result = await loadTest({
    url,
    concurrency: load.concurrency,
    requestsPerSecond: load.rps,
    maxRequests: load.requests,
    requestGenerator: hangUpAfter(load.timeoutMs),
    quiet: true,
    statusCallback: (error) => onFinish?.(error !== null),
  });
  return toRow(result);
}

export function toRow(result: LoadTestResult): Row {
  // TODO: Fill the published table's columns from loadtest's result: totalErrors,
  // meanLatencyMs, totalRequests and elapsedSeconds.
  // TODO: Count only answers in effectiveRps: (totalRequests - totalErrors) / elapsedSeconds.
  // loadtest's own effectiveRps counts a request it gave up on as one it was served.
  // TODO: Take p50, p95 and p99 from result.percentiles (false if no request finished).
  const answered = result.totalRequests - result.totalErrors;
  return {
    errors: result.totalErrors,
    meanLatencyMs: result.meanLatencyMs,
    effectiveRps: answered / result.elapsedSeconds,
    completed: result.totalRequests,
    seconds: result.elapsedSeconds,
    p50Ms: result.percentiles['50'] || 0,
    p95Ms: result.percentiles['95'] || 0,
    p99Ms: result.percentiles['99'] || 0,
  };
}

const LABEL_WIDTH = 14;
const COLUMN_WIDTH = 16;

export function formatTable(serial: Row, cluster: Row): string {
  // TODO: Under a header line, one line per entry of METRICS: its label, the serial
  // value, the cluster value, and formatRatio(cluster value, serial value). Format the
  // values with metric.format() and line the columns up with padEnd() and padStart().
  const header = ''.padEnd(LABEL_WIDTH) + ['serial', 'cluster', 'cluster/serial'].map((title) => title.padStart(COLUMN_WIDTH)).join('');
  const lines = METRICS.map((metric) => {
    const serialValue = serial[metric.key];
    const clusterValue = cluster[metric.key];
    const cells = [metric.format(serialValue), metric.format(clusterValue), formatRatio(clusterValue, serialValue)];
    return metric.label.padEnd(LABEL_WIDTH) + cells.map((cell) => cell.padStart(COLUMN_WIDTH)).join('');
  });
  return [header, ...lines].join('\n');
}
