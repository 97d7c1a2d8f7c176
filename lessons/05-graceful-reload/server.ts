// Lesson 5: graceful shutdown and rolling reload.
//
// A deploy should cost no request. SIGTERM drains the cluster: every worker stops
// accepting connections, answers the requests it has, closes its idle keep-alive
// connections and exits, and the primary exits 0 once they are gone. SIGHUP replaces the
// workers one at a time: each new worker must listen and stay up for a moment before an
// old one drains, and a new worker that fails stops the reload with the old ones serving.
import { AsyncLocalStorage } from 'node:async_hooks';
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { readConfig } from '../../common/config.ts';
import { injectFaults } from '../../common/faults.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { sendJson } from '../../common/respond.ts';

const config = readConfig();

// The first counted death waits RESTART_DELAY_MS; each one after it doubles the wait, up
// to MAX_RESTART_DELAY_MS, until the pool has gone STABLE_UPTIME_MS without one.
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 1_000;
const STABLE_UPTIME_MS = 5_000;
// DEATH_LIMIT counted deaths within DEATH_WINDOW_MS is a crash loop, not bad luck. The
// backoff cap is short enough that a loop fills the window even with one worker.
const DEATH_LIMIT = 5;
const DEATH_WINDOW_MS = 10_000;
// How long a draining worker may spend on the requests it has, after an uncaught
// exception, on a reload or on SIGTERM, before it is killed: DRAIN_TIMEOUT_MS in the
// environment, 10 s by default. Set it longer than your slowest request.
const DRAIN_TIMEOUT_MS = config.drainTimeoutMs;
// How long the primary gives its workers to exit on SIGTERM before it SIGKILLs them.
const STOP_TIMEOUT_MS = 3_000;
// A draining worker answers every request with Connection: close. A keep-alive client
// that has sent nothing for this long is idle, and its connection is closed.
const KEEP_ALIVE_GRACE_MS = 1_000;
// A reload gives each new worker this long to listen, then watches it stay up this long
// before an old worker drains.
const LISTEN_TIMEOUT_MS = 10_000;
const STABILITY_WINDOW_MS = 500;
// What a worker tells the primary after an uncaught exception, with the request that was
// running when it was thrown, if one was.
const DRAINING = 'draining';
interface DrainingMessage {
  type: typeof DRAINING;
  request?: string;
}
// What the primary tells a draining worker once another worker serves: stop accepting.
const CLOSE = 'close';
// What the primary tells a worker to make it drain and exit.
const SHUTDOWN = 'shutdown';

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
// The port stays open while one worker listens on it: when the last one closes its server,
// the primary closes the port and clients are refused. So a draining worker closes only
// once another worker is serving.
const serving = new Set<Worker>();
const closeWhenServed = new Set<Worker>();

// The response of the request whose code is running, even inside its callbacks.
const currentResponse = new AsyncLocalStorage<http.ServerResponse>();
let draining = false;
let crashed = false;

if (cluster.isPrimary) {
  for (let i = 0; i < config.workers; i++) {
    cluster.fork();
  }
  cluster.on('online', (worker) => {
    console.log(`worker ${worker.process.pid} online`);
  });
  let listening = 0;
  cluster.on('listening', (worker) => {
    listening += 1;
    if (listening === config.workers) {
      console.log(`primary ${process.pid} ready: ${config.workers} workers at http://${config.host}:${config.port}`);
    }
    serving.add(worker);
    for (const drained of closeWhenServed) closeWorker(drained);
  });
  cluster.on('exit', handleWorkerExit);
  cluster.on('message', handleWorkerMessage);
  process.on('SIGTERM', () => stopCluster(0));
  process.on('SIGINT', () => stopCluster(0));
  // TODO (6): On SIGHUP, replace the workers one at a time. Use process.on('SIGHUP', ...) and reloadWorkers().
} else {
  startServer();
}

function handleWorkerExit(worker: Worker, code: number, signal: string): void {
  serving.delete(worker);
  closeWhenServed.delete(worker);
  // TODO (7): Don't restart a new worker that dies on trial: the reload stops instead. Keep a WeakSet of workers on trial.
  if (stoppedOnPurpose.has(worker) || replaced.has(worker)) return;
  console.log(`worker ${worker.process.pid} ${describeExit(code, signal)}`);
  restartWithBackoff(worker);
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

function handleWorkerMessage(worker: Worker, message: DrainingMessage): void {
  if (message?.type !== DRAINING) return;
  serving.delete(worker);
  if (serving.size > 0) closeWorker(worker);
  else closeWhenServed.add(worker);
  // TODO (7): A new worker on trial that crashes is not replaced either: the reload sees it exit and stops.
  if (message.request) {
    console.log(`worker ${worker.process.pid} crashed on ${message.request}: replacing it at once`);
    replaced.add(worker);
    if (!stopping) cluster.fork();
    return;
  }
  console.log(`worker ${worker.process.pid} crashed outside any request`);
  restartWithBackoff(worker);
}

function closeWorker(worker: Worker): void {
  closeWhenServed.delete(worker);
  if (worker.isConnected()) worker.send(CLOSE);
}

// A death that no request explains: counted toward the crash loop, and restarted late.
function restartWithBackoff(worker: Worker): void {
  replaced.add(worker);
  if (stopping) return;
  const now = Date.now();
  if (isCrashLoop(now)) {
    const seconds = DEATH_WINDOW_MS / 1000;
    console.error(`primary ${process.pid} giving up: ${DEATH_LIMIT} workers died within ${seconds} s with no request to blame (do they crash at boot?)`);
    stopCluster(1);
    return;
  }
  const delayMs = nextRestartDelayMs(now);
  console.log(`replacing worker ${worker.process.pid} in ${delayMs} ms`);
  const timer = setTimeout(() => {
    pendingForks.delete(timer);
    cluster.fork();
  }, delayMs);
  pendingForks.add(timer);
}

// The window slides: it holds the last DEATH_WINDOW_MS, an hour after launch as at boot.
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

// Replaces the workers running now one at a time, so that some always serve.
async function reloadWorkers(): Promise<void> {
  // TODO (8): Keep a reloading flag, cleared however a reload ends; a SIGHUP during a reload asks for one more.
  // TODO (6): For each worker running now: fork a new one, await waitUntilReady(), then await retireWorker() on the old one.
  // TODO (7): If a new worker is not ready, stop, keep the old workers, and print a line with "reload stopped" and why.
}

// Resolves to undefined once `worker` is ready to take over from an old one, or to why not.
async function waitUntilReady(worker: Worker): Promise<string | undefined> {
  // TODO (5): Ready means 'listening' (not 'online') and STABILITY_WINDOW_MS up. Race once(worker, 'listening') with 'exit' and a timer.
  return undefined;
}

// Drains `worker` and resolves once it has exited.
async function retireWorker(worker: Worker): Promise<void> {
  // TODO (4): Send SHUTDOWN and await 'exit'; SIGKILL after DRAIN_TIMEOUT_MS. Use worker.send(), once(worker, 'exit').
}

function stopCluster(exitCode: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  for (const timer of pendingForks) clearTimeout(timer);
  // TODO (9): Drain every worker instead of stopping it: retireWorker() each, all at once. The primary then exits by itself.
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
  const server = http.createServer((req, res) => currentResponse.run(res, () => handleRequest(req, res)));
  // The checks make workers crash through the environment (common/faults.ts): keep this line.
  // CRASH_AT_BOOT_FILE is how lesson 5's check makes the workers of a bad release crash.
  injectFaults(server);
  process.on('uncaughtException', (error) => handleUncaughtException(error));
  // TODO (1): Drain and exit 0 on SHUTDOWN from the primary, and on SIGTERM or SIGINT to the worker itself. Use process.on('message', ...).
  process.on('message', (message) => {
    if (message === CLOSE) drain(server, 1);
  });
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
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
  sendJson(res, 404, { error: `no route for ${req.url}` });
}

// After an uncaught exception the worker's state is unknown: it answers the request that
// hit the bug, tells the primary, and drains once the primary has another worker serving.
function handleUncaughtException(error: Error): void {
  console.error(`worker ${process.pid} uncaught exception:`, error);
  const res = currentResponse.getStore();
  answerFailedRequest(res);
  if (crashed || draining) return;
  crashed = true;
  const message: DrainingMessage = { type: DRAINING, request: res && `${res.req.method} ${res.req.url}` };
  cluster.worker?.send(message);
  setTimeout(() => process.exit(1), DRAIN_TIMEOUT_MS).unref();
}

function answerFailedRequest(res: http.ServerResponse | undefined): void {
  if (!res || res.headersSent) return;
  res.setHeader('connection', 'close');
  sendJson(res, 500, { error: 'internal error' });
}

// Stops accepting connections, answers the requests on the open ones, and exits once
// every connection has closed, or after DRAIN_TIMEOUT_MS.
function drain(server: http.Server, exitCode: number): void {
  if (draining) return;
  draining = true;
  // TODO (2): Stop accepting but keep the open connections. Use net.Server.prototype.close.call(server, ...), not server.close().
  // TODO (3): Once the last connection has closed, leave with cluster.worker.disconnect(), not process.exit(). Set process.exitCode.
  server.close(() => process.exit(exitCode));
  // TODO (2): Close the connections still idle after KEEP_ALIVE_GRACE_MS. Use server.closeIdleConnections().
  setTimeout(() => process.exit(exitCode), DRAIN_TIMEOUT_MS).unref();
}
