// Lesson 3: worker restart and error isolation.
//
// A bug that throws in one worker should cost the request that hit it, not the app.
// The worker that hits an uncaught exception stops taking connections, finishes the
// requests it already has, and exits; the primary starts a replacement at once. If
// workers keep dying, the primary waits longer before each restart, and in the end
// gives up and exits rather than fork forever. CRASH_AT_BOOT=1 shows that last part.
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { readConfig } from '../../common/config.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { sendJson } from '../../common/respond.ts';

const config = readConfig();

// The first restart waits RESTART_DELAY_MS; each death after it doubles the wait, up to
// MAX_RESTART_DELAY_MS, until the pool has gone STABLE_UPTIME_MS without a death.
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 1_000;
const STABLE_UPTIME_MS = 5_000;
// DEATH_LIMIT deaths within DEATH_WINDOW_MS is a crash loop, not bad luck. The backoff
// cap is short enough that a loop fills the window even with one worker.
const DEATH_LIMIT = 5;
const DEATH_WINDOW_MS = 10_000;
// How long a worker that hit an uncaught exception may spend on the requests it has.
const DRAIN_TIMEOUT_MS = 5_000;
// How long the primary gives its workers to exit on SIGTERM before it SIGKILLs them.
const STOP_TIMEOUT_MS = 3_000;
// What a worker tells the primary when it stops accepting connections.
const DRAINING = 'draining';

if (cluster.isPrimary) {
  for (let i = 0; i < config.workers; i++) {
    cluster.fork();
  }
  cluster.on('online', (worker) => {
    console.log(`worker ${worker.process.pid} online`);
  });
  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === config.workers) {
      console.log(`primary ${process.pid} ready: ${config.workers} workers at http://${config.host}:${config.port}`);
    }
  });
  // TODO (4): Replace a worker that dies unexpectedly, not one you stop yourself. Use cluster.on('exit', ...).
  // TODO (5): Start the replacement when a worker says DRAINING, not when it exits. Use cluster.on('message', ...).
  // TODO (8): On SIGTERM or SIGINT, stop every worker, then exit with code 0. Use process.on('SIGTERM', ...), worker.kill().
} else {
  startServer();
}

function replaceWorker(worker: Worker): void {
  // TODO (7): Give up after DEATH_LIMIT deaths within DEATH_WINDOW_MS: print "giving up", exit 1, fork no more. Use clearTimeout.
  // TODO (6): Wait before each restart, doubling the wait after each death. Use setTimeout, and keep the timer.
  cluster.fork();
}

function startServer(): void {
  // CRASH_AT_BOOT=1 makes every worker throw before it listens, as one with a bad config
  // or a missing dependency would. The check uses it to test the primary's limit.
  if (process.env.CRASH_AT_BOOT === '1') {
    throw new Error(`CRASH_AT_BOOT=1: worker ${process.pid} crashed at boot`);
  }
  // TODO (2): Answer the request that hit the bug with a 500. Use an AsyncLocalStorage: run(res, ...), getStore().
  const server = http.createServer(handleRequest);
  // TODO (1): On an uncaught exception, drain, send DRAINING, then exit 1. Use process.on('uncaughtException', ...), server.close().
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  // TODO (3): While draining, close each connection once it is answered. Use res.setHeader('connection', 'close').
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
  sendJson(res, 404, { error: `no route for ${req.url}` });
}
