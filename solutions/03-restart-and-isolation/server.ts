// Lesson 3: worker restart and error isolation.
//
// A bug that throws in one worker should cost the request that hit it, not the app.
// The worker that hits an uncaught exception answers that request with a 500, stops
// taking connections, finishes the requests it already has, and exits. The primary
// tells two kinds of death apart. A worker that a request killed had booted and served,
// so its replacement will too: it is replaced at once, every time. Any other death (at
// boot, or with no request running) may well happen to the next worker too, so those
// deaths are counted: each restart waits longer, and too many in a row end the app.
import { AsyncLocalStorage } from 'node:async_hooks';
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import net from 'node:net';
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
// How long a worker that hit an uncaught exception may spend on the requests it has.
const DRAIN_TIMEOUT_MS = 5_000;
// How long the primary gives its workers to exit on SIGTERM before it SIGKILLs them.
const STOP_TIMEOUT_MS = 3_000;
// What a worker tells the primary after an uncaught exception, with the request that was
// running when it was thrown, if one was.
const DRAINING = 'draining';
interface DrainingMessage {
  type: typeof DRAINING;
  request?: string;
}
// What the primary tells a draining worker once another worker serves: stop accepting.
const CLOSE = 'close';

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
    // TODO (5): Note that this worker serves, and send CLOSE to the crashed workers waiting for one.
    serving.add(worker);
    for (const drained of closeWhenServed) closeWorker(drained);
  });
  // TODO (1): Replace a worker that dies unexpectedly, not one you stop yourself. Use cluster.on('exit', ...).
  cluster.on('exit', handleWorkerExit);
  // TODO (5): Replace a worker that says DRAINING at once if a request killed it; CLOSE it once another serves. Use cluster.on('message', ...).
  cluster.on('message', handleWorkerMessage);
  // TODO (8): On SIGTERM or SIGINT, stop every worker; the primary exits 0 after the last. Use process.on('SIGTERM', ...), worker.kill().
  process.on('SIGTERM', () => stopCluster(0));
  process.on('SIGINT', () => stopCluster(0));
} else {
  startServer();
}

function handleWorkerExit(worker: Worker, code: number, signal: string): void {
  serving.delete(worker);
  closeWhenServed.delete(worker);
  if (stoppedOnPurpose.has(worker) || replaced.has(worker)) return;
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  console.log(`worker ${worker.process.pid} ${how}`);
  restartWithBackoff(worker);
}

function handleWorkerMessage(worker: Worker, message: DrainingMessage): void {
  if (message?.type !== DRAINING) return;
  serving.delete(worker);
  if (serving.size > 0) closeWorker(worker);
  else closeWhenServed.add(worker);
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
  // TODO (7): Give up after DEATH_LIMIT deaths within DEATH_WINDOW_MS: print "giving up", exit 1, fork no more. Use clearTimeout.
  if (isCrashLoop(now)) {
    const seconds = DEATH_WINDOW_MS / 1000;
    console.error(`primary ${process.pid} giving up: ${DEATH_LIMIT} workers died within ${seconds} s with no request to blame (do they crash at boot?)`);
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
  // TODO (3): Answer the request that hit the bug with a 500. Use an AsyncLocalStorage: run(res, ...), getStore().
  const server = http.createServer((req, res) => currentResponse.run(res, () => handleRequest(req, res)));
  // The checks make workers crash through the environment (common/faults.ts): keep this line.
  injectFaults(server);
  // TODO (2): On an uncaught exception, send DRAINING; on CLOSE, stop accepting and leave once drained. Use process.on('uncaughtException', ...).
  process.on('uncaughtException', (error) => drainAndExit(error));
  process.on('message', (message) => {
    if (message === CLOSE) closeAndExit(server);
  });
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  // TODO (4): While draining, close each connection once it is answered. Use res.setHeader('connection', 'close').
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

// After an uncaught exception the worker's state is unknown: it answers the request that
// hit the bug, tells the primary, and exits once the primary has another worker serving
// and it has answered the requests it has, or after DRAIN_TIMEOUT_MS.
function drainAndExit(error: Error): void {
  console.error(`worker ${process.pid} uncaught exception:`, error);
  const res = currentResponse.getStore();
  answerFailedRequest(res);
  if (draining) return;
  draining = true;
  const message: DrainingMessage = { type: DRAINING, request: res && `${res.req.method} ${res.req.url}` };
  cluster.worker?.send(message);
  setTimeout(() => process.exit(1), DRAIN_TIMEOUT_MS).unref();
}

// http's server.close() would also drop every connection with no request in progress, and
// on newer Node that includes one whose request has arrived but is not read yet. net's
// close only stops accepting: each connection left ends once it is answered. Then the
// worker leaves with disconnect(), not process.exit(): a connection the primary handed
// over just before the close is handed back to it, not lost with the process.
function closeAndExit(server: http.Server): void {
  net.Server.prototype.close.call(server, () => {
    process.exitCode = 1;
    cluster.worker?.disconnect();
  });
}

function answerFailedRequest(res: http.ServerResponse | undefined): void {
  if (!res || res.headersSent) return;
  res.setHeader('connection', 'close');
  sendJson(res, 500, { error: 'internal error' });
}
