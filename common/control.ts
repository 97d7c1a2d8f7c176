// Lesson 9's control port: the primary's own HTTP server on 127.0.0.1:METRICS_PORT, never
// a port the workers share. It serves the primary's metrics, and asks one worker, named
// by its pid, to open its debugger or take a CPU profile. The asking goes over IPC:
// askWorker() in the primary, answerPrimary() in the worker.
import type { Worker } from 'node:cluster';
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { ServerConfig } from './config.ts';
import type { Log } from './log.ts';
import { sendJson } from './respond.ts';
import { liveWorkers } from './supervisor.ts';

export const INSPECT = 'inspect';
export const PROFILE = 'profile';
// How long a worker may take to answer, on top of the time a profile runs.
const ASK_TIMEOUT_MS = 2_000;
const DEFAULT_PROFILE_MS = 2_000;
export const MAX_PROFILE_MS = 60_000;
const CONTROL_HOST = '127.0.0.1';
const WORKER_ROUTE = /^\/workers\/(\d+)\/(inspect|profile)$/;

interface Ask {
  type: 'ask';
  id: number;
  what: string;
  params: object;
}
interface Answer {
  type: 'answer';
  id: number;
  result?: unknown;
  error?: string;
}

export interface Controls {
  // Each resolves with what the worker answered: its inspector's ws:// URL, the profile's path.
  inspect(worker: Worker): Promise<unknown>;
  profile(worker: Worker, ms: number): Promise<unknown>;
}

let lastAskId = 0;

// In the primary: asks `worker` to run what answerPrimary(what, …) gave it, and resolves
// with its answer; rejects if the worker throws, exits, or is silent for too long.
export function askWorker(worker: Worker, what: string, params: object = {}, extraMs = 0): Promise<unknown> {
  const id = ++lastAskId;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`worker ${worker.process.pid} did not answer ${what} within ${(ASK_TIMEOUT_MS + extraMs) / 1000} s`)), ASK_TIMEOUT_MS + extraMs);
    const onMessage = (message: Answer) => {
      if (message?.type !== 'answer' || message.id !== id) return;
      if (message.error !== undefined) finish(new Error(message.error));
      else finish(undefined, message.result);
    };
    const onExit = () => finish(new Error(`worker ${worker.process.pid} exited before it answered ${what}`));
    function finish(error: Error | undefined, result?: unknown): void {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      if (error) reject(error);
      else resolve(result);
    }
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    const ask: Ask = { type: 'ask', id, what, params };
    if (worker.isConnected()) worker.send(ask);
    else onExit();
  });
}

// In a worker: answers the primary's askWorker(worker, what, params) with handler(params).
export function answerPrimary<P extends object>(what: string, handler: (params: P) => unknown): void {
  process.on('message', async (message: Ask) => {
    if (message?.type !== 'ask' || message.what !== what) return;
    let answer: Answer;
    try {
      answer = { type: 'answer', id: message.id, result: await handler(message.params as P) };
    } catch (error) {
      answer = { type: 'answer', id: message.id, error: error instanceof Error ? error.message : String(error) };
    }
    if (process.connected) process.send!(answer);
  });
}

// GET /metrics, GET /workers, POST /workers/<pid>/inspect, POST /workers/<pid>/profile?ms=N
export function startControl(config: ServerConfig, registry: Registry, log: Log, controls: Controls): http.Server {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      log.error({ event: 'control-error', url: req.url, err: error }, `${req.method} ${req.url} on the control port failed: ${error.message}`);
      if (!res.headersSent) sendJson(res, 500, { error: error.message });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${CONTROL_HOST}`);
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(text);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/workers') {
      sendJson(res, 200, liveWorkers().map((worker) => ({ id: worker.id, pid: worker.process.pid })));
      return;
    }
    const route = url.pathname.match(WORKER_ROUTE);
    if (req.method !== 'POST' || !route) {
      sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
      return;
    }
    const pid = Number(route[1]);
    const worker = liveWorkers().find((candidate) => candidate.process.pid === pid);
    if (!worker) {
      sendJson(res, 404, { error: `no live worker has pid ${pid}` });
      return;
    }
    if (route[2] === INSPECT) {
      const inspectorUrl = await controls.inspect(worker);
      if (typeof inspectorUrl !== 'string') {
        sendJson(res, 500, { error: `worker ${pid} answered no inspector URL (inspector.url() is ${inspectorUrl}): see its stderr` });
        return;
      }
      log.info({ event: 'inspect', workerPid: pid, url: inspectorUrl }, `worker ${pid} inspector at ${inspectorUrl}`);
      sendJson(res, 200, { pid, url: inspectorUrl });
      return;
    }
    const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || DEFAULT_PROFILE_MS, 1), MAX_PROFILE_MS);
    const file = await controls.profile(worker, ms);
    log.info({ event: 'profile', workerPid: pid, ms, file }, `worker ${pid} profiled for ${ms} ms: ${file}`);
    sendJson(res, 200, { pid, file });
  }

  server.on('error', (error: NodeJS.ErrnoException) => {
    log.error({ event: 'metrics-error', code: error.code }, `primary ${process.pid} cannot listen on METRICS_PORT ${config.metricsPort} (${error.code ?? error.message}): give METRICS_PORT a free port`);
    // The workers exit when the primary's channel to them closes.
    process.exit(1);
  });
  server.listen(config.metricsPort, CONTROL_HOST, () => {
    const { port } = server.address() as { port: number };
    log.info({ event: 'metrics', port }, `primary ${process.pid} metrics at http://${CONTROL_HOST}:${port}/metrics`);
  });
  // The primary exits once its workers are gone, as before: this server does not hold it.
  server.unref();
  return server;
}
