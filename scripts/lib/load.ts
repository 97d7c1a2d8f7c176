// Load from loadtest's promise API, summarised in the fields the course prints.
import { loadTest, type LoadTestOptions, type RequestGenerator } from 'loadtest';

export interface LoadOptions {
  url: string;
  requests: number;
  concurrency: number;
  // Open loop at this rate; without it each of `concurrency` clients sends its next
  // request as soon as the last one is answered (closed loop).
  rps?: number;
  // A request not answered within this many ms is given up on and counts as an error.
  timeoutMs?: number;
  maxSeconds?: number;
  keepAlive?: boolean;
  // Sent with every request, such as lesson 10's session cookie.
  headers?: Record<string, string>;
  onAnswer?: (ok: boolean) => void;
  // Called as each request ends: with loadtest's error message (null for an answer with
  // a status below 400), the answer's body, if one came, and how long it took.
  onOutcome?: (error: string | null, body: string | undefined, ms: number | undefined) => void;
}

export interface LoadSummary {
  requests: number;
  errors: number;
  errorCodes: Record<string, number>;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  rps: number;
  seconds: number;
}

// Every load the course sends ends by itself, whatever the server does.
const MAX_SECONDS = 30;

export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const result = await loadTest({
    url: options.url,
    maxRequests: options.requests,
    concurrency: options.concurrency,
    requestsPerSecond: options.rps,
    requestGenerator: options.timeoutMs ? hangUpAfter(options.timeoutMs) : undefined,
    maxSeconds: options.maxSeconds ?? MAX_SECONDS,
    agentKeepAlive: options.keepAlive ?? false,
    headers: options.headers,
    quiet: true,
    statusCallback: reportOutcomes(options),
  });
  const percentile = (key: '50' | '95' | '99') => result.percentiles[key] || result.maxLatencyMs;
  return {
    requests: result.totalRequests,
    errors: result.totalErrors,
    errorCodes: result.errorCodes,
    meanMs: result.meanLatencyMs,
    p50Ms: percentile('50'),
    p95Ms: percentile('95'),
    p99Ms: percentile('99'),
    maxMs: result.maxLatencyMs,
    rps: result.totalRequests / result.elapsedSeconds,
    seconds: result.elapsedSeconds,
  };
}

function reportOutcomes({ onAnswer, onOutcome }: LoadOptions): LoadTestOptions['statusCallback'] {
  if (!onAnswer && !onOutcome) return undefined;
  return (error, result) => {
    onAnswer?.(!error);
    onOutcome?.(error, result?.body, result?.requestElapsed);
  };
}

// A client that gives up on a request after `timeoutMs` hangs up, as a browser does.
// loadtest's own `timeout` option counts the request as an error but leaves it open:
// when the answer arrives later, loadtest counts it again as another completed
// request, and stops as soon as its inflated count reaches maxRequests, before the
// last requests have finished. A request given up on here ends once, as an error.
// Pass it as loadtest's requestGenerator option instead of `timeout`.
export function hangUpAfter(timeoutMs: number): RequestGenerator {
  return (_options, params, request, onResponse) => {
    const outgoing = request(params, onResponse);
    const timer = setTimeout(() => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    outgoing.once('response', () => clearTimeout(timer));
    outgoing.once('close', () => clearTimeout(timer));
    return outgoing;
  };
}
