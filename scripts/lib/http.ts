import http from 'node:http';

export interface HttpAnswer {
  status: number;
  body: string;
  json: unknown;
  ms: number;
  headers: http.IncomingHttpHeaders;
}

const REQUEST_TIMEOUT_MS = 5_000;
const RESET_GRACE_MS = 300;

// A GET over a fresh connection. Keep-alive would pin every request to the worker
// that accepted the first connection and hide the others; pass a keep-alive `agent` to
// send it over a connection the agent keeps open.
export function get(url: string, timeoutMs = REQUEST_TIMEOUT_MS, agent: http.Agent | false = false): Promise<HttpAnswer> {
  return send('GET', url, timeoutMs, agent);
}

// get() with another method, such as lesson 8's POST, which nginx must not send twice.
export function send(method: string, url: string, timeoutMs = REQUEST_TIMEOUT_MS, agent: http.Agent | false = false, headers: http.OutgoingHttpHeaders = {}): Promise<HttpAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('error', reject);
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, body, json: parseJson(body), ms: performance.now() - started, headers: response.headers });
      });
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (error: NodeJS.ErrnoException) => {
      const failure = new Error(`${method} ${new URL(url).pathname}: ${describeError(error)}`);
      // A reset, or a refusal right after an answer, often means the server is dying:
      // give its exit and its last stderr a moment to reach the check, so that the verdict
      // can show why (a crash, say).
      if (error.code === 'ECONNRESET' || error.code === 'ECONNREFUSED') setTimeout(() => reject(failure), RESET_GRACE_MS);
      else reject(failure);
    });
    request.end();
  });
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function describeError(error: NodeJS.ErrnoException): string {
  if (error.code === 'ECONNREFUSED') return 'connection refused (nothing listens on the port)';
  if (error.code === 'ECONNRESET') return 'connection reset (the process closed it without answering)';
  return error.message;
}

export function pidOf(answer: HttpAnswer): number | undefined {
  const pid = (answer.json as { pid?: unknown } | undefined)?.pid;
  return typeof pid === 'number' ? pid : undefined;
}

// Which pids answer `count` requests to `url`, one fresh connection each.
export async function samplePids(url: string, count: number): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const pid = pidOf(await get(url));
    if (pid !== undefined) pids.push(pid);
  }
  return pids;
}
