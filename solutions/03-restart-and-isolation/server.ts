// Lesson 3: worker restart and error isolation.
//
// A bug that throws in one worker should cost the request that hit it, not the app.
// The worker that hits an uncaught exception stops taking connections, finishes the
// requests it already has, and exits; the primary starts a replacement at once. If
// workers keep dying, the primary waits longer before each restart, and in the end
// gives up and exits rather than fork forever. CRASH_AT_BOOT=1 shows that last part.
import { AsyncLocalStorage } from 'node:async_hooks';
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

// Workers the primary stops itself: their exit is no accident and needs no replacement.
// worker.exitedAfterDisconnect cannot tell them apart: it stays false after worker.kill().
const stoppedOnPurpose = new WeakSet<Worker>();
// Workers whose replacement was started when they began to drain.
const replaced = new WeakSet<Worker>();
// Restarts waiting out their backoff. Stopping cancels them, or they would fork after it.
const pendingForks = new Set<NodeJS.Timeout>();
const deathTimes: number[] = [];
let lastDeathAt = -Infinity;
let restartAttempt = 0;
let stopping = false;

// The response of the request whose code is running, even inside its callbacks.
const currentResponse = new AsyncLocalStorage<http.ServerResponse>();
let draining = false;

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
  cluster.on('exit', handleWorkerExit);
  // TODO (5): Start the replacement when a worker says DRAINING, not when it exits. Use cluster.on('message', ...).
  cluster.on('message', handleWorkerMessage);
  // TODO (8): On SIGTERM or SIGINT, stop every worker, then exit with code 0. Use process.on('SIGTERM', ...), worker.kill().
  process.on('SIGTERM', () => stopCluster(0));
  process.on('SIGINT', () => stopCluster(0));
} else {
  startServer();
}

function handleWorkerExit(worker: Worker, code: number, signal: string): void {
  if (stoppedOnPurpose.has(worker) || replaced.has(worker)) return;
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  console.log(`worker ${worker.process.pid} ${how}`);
  replaceWorker(worker);
}

function handleWorkerMessage(worker: Worker, message: unknown): void {
  if (message !== DRAINING) return;
  console.log(`worker ${worker.process.pid} is draining after an uncaught exception`);
  replaceWorker(worker);
}

function replaceWorker(worker: Worker): void {
  replaced.add(worker);
  if (stopping) return;
  const now = Date.now();
  // TODO (7): Give up after DEATH_LIMIT deaths within DEATH_WINDOW_MS: print "giving up", exit 1, fork no more. Use clearTimeout.
  if (isCrashLoop(now)) {
    const seconds = DEATH_WINDOW_MS / 1000;
    console.error(`primary ${process.pid} giving up: ${DEATH_LIMIT} workers died within ${seconds} s, faster than restarts can help (do they crash at boot?)`);
    stopCluster(1);
    return;
  }
  // TODO (6): Wait before each restart, doubling the wait after each death. Use setTimeout, and keep the timer.
  const delayMs = nextRestartDelayMs(now);
  console.log(`replacing worker ${worker.process.pid} in ${delayMs} ms`);
  const timer = setTimeout(() => {
    pendingForks.delete(timer);
    cluster.fork();
  }, delayMs);
  pendingForks.add(timer);
}

function isCrashLoop(now: number): boolean {
  deathTimes.push(now);
  while (deathTimes[0] <= now - DEATH_WINDOW_MS) deathTimes.shift();
  return deathTimes.length >= DEATH_LIMIT;
}

function nextRestartDelayMs(now: number): number {
  if (now - lastDeathAt >= STABLE_UPTIME_MS) restartAttempt = 0;
  lastDeathAt = now;
  const delayMs = Math.min(RESTART_DELAY_MS * 2 ** restartAttempt, MAX_RESTART_DELAY_MS);
  restartAttempt += 1;
  return delayMs;
}

function stopCluster(exitCode: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  for (const timer of pendingForks) clearTimeout(timer);
  for (const worker of Object.values(cluster.workers ?? {})) {
    if (!worker) continue;
    stoppedOnPurpose.add(worker);
    worker.kill();
  }
  // A worker that ignores SIGTERM must not outlive the primary. Once every worker is
  // gone nothing else keeps the primary running, so it exits with process.exitCode.
  setTimeout(killRemainingWorkers, STOP_TIMEOUT_MS).unref();
}

function killRemainingWorkers(): void {
  for (const worker of Object.values(cluster.workers ?? {})) {
    worker?.process.kill('SIGKILL');
  }
}

function startServer(): void {
  // CRASH_AT_BOOT=1 makes every worker throw before it listens, as one with a bad config
  // or a missing dependency would. The check uses it to test the primary's limit.
  if (process.env.CRASH_AT_BOOT === '1') {
    throw new Error(`CRASH_AT_BOOT=1: worker ${process.pid} crashed at boot`);
  }
  // TODO (2): Answer the request that hit the bug with a 500. Use an AsyncLocalStorage: run(res, ...), getStore().
  const server = http.createServer((req, res) => currentResponse.run(res, () => handleRequest(req, res)));
  // TODO (1): On an uncaught exception, drain, send DRAINING, then exit 1. Use process.on('uncaughtException', ...), server.close().
  process.on('uncaughtException', (error) => drainAndExit(server, error));
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  // TODO (3): While draining, close each connection once it is answered. Use res.setHeader('connection', 'close').
  if (draining) res.setHeader('connection', 'close');
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

// After an uncaught exception the worker's state is unknown, so it takes no new work:
// it only finishes what it has already accepted, within DRAIN_TIMEOUT_MS, and exits.
function drainAndExit(server: http.Server, error: Error): void {
  console.error(`worker ${process.pid} uncaught exception:`, error);
  if (draining) return;
  draining = true;
  answerFailedRequest();
  server.close(() => process.exit(1));
  cluster.worker?.send(DRAINING);
  setTimeout(() => process.exit(1), DRAIN_TIMEOUT_MS).unref();
}

function answerFailedRequest(): void {
  const res = currentResponse.getStore();
  if (!res || res.headersSent) return;
  res.setHeader('connection', 'close');
  sendJson(res, 500, { error: 'internal error' });
}
