// The worker you built in lessons 3 and 5, as a module, for lesson 6 on: an HTTP server
// on the contract's routes that answers the request an uncaught exception hit with a
// 500, and drains (stops accepting, answers what it has, closes idle keep-alive
// connections, exits) on SHUTDOWN, SIGTERM or SIGINT. It is the lesson-5 solution's
// worker, plus the route lesson 6 adds: GET /hang, which never returns, and lesson 9's log:
// the crash line and the DRAINING message carry the request's x-request-id, if it has one;
// and lesson 10's front handler, which answers its own routes and limits every request.
import { AsyncLocalStorage } from 'node:async_hooks';
import cluster from 'node:cluster';
import http from 'node:http';
import net from 'node:net';
import type { ServerConfig } from './config.ts';
import { injectFaults } from './faults.ts';
import { consoleLog, type Log } from './log.ts';
import { computeHeavy } from './heavy.ts';
import { CLOSE, DRAINING, SHUTDOWN, type DrainingMessage } from './messages.ts';
import { sendJson } from './respond.ts';

const KEEP_ALIVE_GRACE_MS = 1_000;

// The response of the request whose code is running, even inside its callbacks.
const currentResponse = new AsyncLocalStorage<http.ServerResponse>();
let draining = false;
let crashed = false;
let log: Log = consoleLog;

// From lesson 10 on, a `front` handler sees each request first, and calls next() to hand it
// to the routes above (or answers it itself).
export type Front = (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void;

export function startWorker(config: ServerConfig, logTo: Log = consoleLog, front?: Front): http.Server {
  log = logTo;
  const routes = (req: http.IncomingMessage, res: http.ServerResponse) => handleRequest(config, req, res);
  const server = http.createServer((req, res) => currentResponse.run(res, () => (front ? front(req, res, () => routes(req, res)) : routes(req, res))));
  // The checks make workers crash through the environment (common/faults.ts).
  injectFaults(server);
  const drainTimeoutMs = config.drainTimeoutMs;
  process.on('uncaughtException', (error) => handleUncaughtException(error, drainTimeoutMs));
  process.on('message', (message) => {
    if (message === SHUTDOWN) drain(server, 0, drainTimeoutMs);
    if (message === CLOSE) drain(server, 1, drainTimeoutMs);
  });
  process.on('SIGTERM', () => drain(server, 0, drainTimeoutMs));
  process.on('SIGINT', () => drain(server, 0, drainTimeoutMs));
  server.listen(config.port, config.host);
  return server;
}

function handleRequest(config: ServerConfig, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (draining || crashed) res.setHeader('connection', 'close');
  if (req.url === '/heavy') {
    sendJson(res, 200, { pid: process.pid, result: computeHeavy(config.heavyRounds) });
    return;
  }
  if (req.url === '/light') {
    sendJson(res, 200, { pid: process.pid });
    return;
  }
  if (req.url === '/crash') {
    setTimeout(() => {
      throw new Error(`/crash requested on pid ${process.pid}`);
    });
    return;
  }
  if (req.url === '/hang') {
    // As a runaway regex or an endless loop would: no exception, no exit, no answer, and
    // no other callback of this process ever runs again.
    for (;;);
  }
  sendJson(res, 404, { error: `no route for ${req.url}` });
}

function handleUncaughtException(error: Error, drainTimeoutMs: number): void {
  const res = currentResponse.getStore();
  const requestId = res?.getHeader('x-request-id')?.toString();
  log.error({ event: 'uncaught-exception', err: error, reqId: requestId }, `worker ${process.pid} uncaught exception:`);
  if (res && !res.headersSent) {
    res.setHeader('connection', 'close');
    sendJson(res, 500, { error: 'internal error' });
  }
  if (crashed || draining) return;
  crashed = true;
  const message: DrainingMessage = { type: DRAINING, request: res && `${res.req.method} ${res.req.url}`, requestId };
  cluster.worker?.send(message);
  setTimeout(() => process.exit(1), drainTimeoutMs).unref();
}

function drain(server: http.Server, exitCode: number, drainTimeoutMs: number): void {
  if (draining) return;
  draining = true;
  net.Server.prototype.close.call(server, () => {
    process.exitCode = exitCode;
    cluster.worker?.disconnect();
  });
  // A timer due during a long /heavy runs before the requests that came meanwhile are
  // read, and would close their connections as idle: setImmediate lets them be read first.
  setTimeout(() => setImmediate(() => server.closeIdleConnections()), KEEP_ALIVE_GRACE_MS).unref();
  setTimeout(() => process.exit(exitCode), drainTimeoutMs).unref();
}
