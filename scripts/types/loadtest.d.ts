// The part of loadtest 8's promise API the course uses. The declaration bundled with
// the package still describes the old callback API (loadTest returns an Operation).
declare module 'loadtest' {
  import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';

  export interface LoadTestOptions {
    url: string;
    concurrency?: number;
    maxRequests?: number;
    maxSeconds?: number;
    // Open loop: send this many requests per second whether or not answers come back.
    requestsPerSecond?: number;
    // Milliseconds before a request counts as an error ('-1' in errorCodes). The request
    // stays open, and its late answer is counted again: see hangUpAfter in scripts/lib/load.ts.
    timeout?: number;
    agentKeepAlive?: boolean;
    headers?: Record<string, string>;
    quiet?: boolean;
    statusCallback?: (error: string | null, result: LoadTestStatus | undefined) => void;
    // Creates each request instead of loadtest: call `request(params, onResponse)` and
    // return what it returns; loadtest then attaches its handlers and ends it.
    requestGenerator?: RequestGenerator;
  }

  export type RequestGenerator = (
    options: LoadTestOptions,
    params: RequestOptions,
    request: (params: RequestOptions, onResponse: (response: IncomingMessage) => void) => ClientRequest,
    onResponse: (response: IncomingMessage) => void,
  ) => ClientRequest;

  export interface LoadTestStatus {
    statusCode: number;
    body: string;
    requestElapsed: number;
    requestIndex: number;
  }

  export interface LoadTestResult {
    url: string;
    maxRequests: number;
    concurrency: number;
    requestsPerSecond: number;
    totalRequests: number;
    totalErrors: number;
    elapsedSeconds: number;
    totalTimeSeconds: number;
    accumulatedMs: number;
    meanLatencyMs: number;
    maxLatencyMs: number;
    minLatencyMs: number;
    effectiveRps: number;
    rps: number;
    // Keys 50, 90, 95 and 99: the latency in ms under which that share of requests finished.
    percentiles: Record<'50' | '90' | '95' | '99', number | false>;
    errorCodes: Record<string, number>;
    histogramMs: Record<string, number>;
  }

  export function loadTest(options: LoadTestOptions): Promise<LoadTestResult>;
}
