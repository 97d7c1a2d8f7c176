// A proxy a check puts between a learner's load generator and a server, to count for
// itself what the load generator reports: when each request arrived, when its answer
// left, and whether the client hung up first.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HOST } from './server-process.ts';

interface Passage {
  arrivedMs: number;
  endedMs?: number;
  status?: number;
  hungUp: boolean;
}

// What the proxy saw, judged with the client's timeout: an answer later than
// `timeoutMs` failed as far as the client is concerned, and so did a request still
// waiting longer than that.
export interface Tally {
  received: number;
  answered: number;
  failed: number;
  // Still waiting, and for less than `timeoutMs`: the load ended without them.
  unfinished: number;
  // Requests whose client closed the connection before the answer.
  hungUp: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  // From the first request's arrival to the last one's end.
  seconds: number;
  // From the first request's arrival to the last one's.
  arrivalSeconds: number;
}

const BAD_GATEWAY = 502;

export class CountingProxy {
  private readonly passages: Passage[] = [];
  private readonly server: http.Server;
  private readonly target: URL;

  private constructor(target: URL) {
    this.target = target;
    this.server = http.createServer((req, res) => this.forward(req, res));
  }

  static async start(target: string): Promise<CountingProxy> {
    const proxy = new CountingProxy(new URL(target));
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, HOST, resolve);
    });
    return proxy;
  }

  url(path: string): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://${HOST}:${port}${path}`;
  }

  reset(): void {
    this.passages.length = 0;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const passage: Passage = { arrivedMs: performance.now(), hungUp: false };
    this.passages.push(passage);
    const upstream = http.request(new URL(req.url ?? '/', this.target), { method: req.method, headers: req.headers, agent: false }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        if (passage.hungUp) return;
        passage.status = answer.statusCode;
        passage.endedMs = performance.now();
        res.writeHead(answer.statusCode ?? BAD_GATEWAY, answer.headers);
        res.end(Buffer.concat(chunks));
      });
    });
    upstream.on('error', () => {
      if (passage.hungUp || passage.endedMs !== undefined) return;
      passage.status = BAD_GATEWAY;
      passage.endedMs = performance.now();
      res.writeHead(BAD_GATEWAY).end();
    });
    // A client that hangs up closes its connection to the server, as it would without the proxy.
    res.on('close', () => {
      if (passage.endedMs !== undefined) return;
      passage.hungUp = true;
      passage.endedMs = performance.now();
      upstream.destroy();
    });
    req.pipe(upstream);
  }

  tally(timeoutMs: number): Tally {
    const now = performance.now();
    const latencies: number[] = [];
    let answered = 0;
    let failed = 0;
    let lastEndMs = 0;
    for (const passage of this.passages) {
      const ageMs = (passage.endedMs ?? now) - passage.arrivedMs;
      if (passage.endedMs === undefined && ageMs <= timeoutMs) continue;
      const ok = !passage.hungUp && passage.status !== undefined && passage.status < 400 && ageMs <= timeoutMs;
      if (ok) answered += 1;
      else failed += 1;
      const latencyMs = Math.min(ageMs, timeoutMs);
      latencies.push(latencyMs);
      lastEndMs = Math.max(lastEndMs, passage.arrivedMs + latencyMs);
    }
    latencies.sort((a, b) => a - b);
    const firstMs = this.passages[0]?.arrivedMs ?? now;
    return {
      received: this.passages.length,
      answered,
      failed,
      unfinished: this.passages.length - latencies.length,
      hungUp: this.passages.filter((passage) => passage.hungUp).length,
      meanMs: latencies.reduce((sum, ms) => sum + ms, 0) / latencies.length || 0,
      p50Ms: percentile(latencies, 50),
      p95Ms: percentile(latencies, 95),
      p99Ms: percentile(latencies, 99),
      seconds: latencies.length > 0 ? (lastEndMs - firstMs) / 1000 : 0,
      arrivalSeconds: ((this.passages.at(-1)?.arrivedMs ?? now) - firstMs) / 1000,
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// The latency under which `share` percent of requests finished, from sorted latencies.
function percentile(sorted: number[], share: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * share) / 100))];
}
