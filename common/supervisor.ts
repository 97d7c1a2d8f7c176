// The primary you built in lessons 3 and 5, as a module, for lesson 6 on: it forks the
// workers and keeps the pool whole with lesson 3's restart policy, drains the cluster on
// SIGTERM and SIGINT, and replaces the workers one at a time on SIGHUP. It is the lesson-5
// solution's primary, with two additions: markHung(), for lesson 6's heartbeat, and a log
// of its own for lesson 9, which gets each line as JSON with an `event` field.
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerConfig } from './config.ts';
import { consoleLog, type Log } from './log.ts';
import { CLOSE, DRAINING, SHUTDOWN, type DrainingMessage } from './messages.ts';

// Lesson 3's restart policy: the first counted death waits RESTART_DELAY_MS, each one
// after it twice as long, up to MAX_RESTART_DELAY_MS, until the pool has gone
// STABLE_UPTIME_MS without one; DEATH_LIMIT within DEATH_WINDOW_MS is a crash loop.
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 1_000;
const STABLE_UPTIME_MS = 5_000;
const DEATH_LIMIT = 5;
const DEATH_WINDOW_MS = 10_000;
// Lesson 5: how a reload tries out a new worker before an old one drains. How long a
// draining worker may take before it is killed is config.drainTimeoutMs.
const LISTEN_TIMEOUT_MS = 10_000;
const STABILITY_WINDOW_MS = 500;

export interface Supervisor {
  // Call it just before you kill a worker that has hung: one that had listened is, like a
  // worker that crashed on a request, replaced at once and not counted toward a crash
  // loop; one that hung before it ever listened is counted, as a crash at boot is.
  markHung(worker: Worker): void;
}

// Workers the primary stops itself (a reload, SIGTERM): no replacement needed.
const stoppedOnPurpose = new WeakSet<Worker>();
// Workers whose replacement was started when they began to drain, or is on its way.
const replaced = new WeakSet<Worker>();
const hung = new WeakSet<Worker>();
// Workers that have listened: one that hangs before it ever serves is a boot failure.
const listened = new WeakSet<Worker>();
const onTrial = new WeakSet<Worker>();
const pendingForks = new Set<NodeJS.Timeout>();
const deathTimes: number[] = [];
// A draining worker closes its server only once another one serves, or the primary
// closes the port and clients are refused (lesson 3).
const serving = new Set<Worker>();
const closeWhenServed = new Set<Worker>();
let lastDeathAt = -Infinity;
let restartAttempt = 0;
let stopping = false;
let reloading = false;
let reloadRequested = false;
let drainTimeoutMs = 0;
let log: Log = consoleLog;

export function startSupervisor(config: ServerConfig, logTo?: Log): Supervisor {
  drainTimeoutMs = config.drainTimeoutMs;
  log = logTo ?? consoleLog;
  // A line per fork only in a log of its own: lessons 6 to 8 print what lesson 5 did.
  if (logTo) cluster.on('fork', (worker) => log.info({ event: 'fork', workerId: worker.id, workerPid: worker.process.pid }, `worker ${worker.process.pid} forked`));
  for (let i = 0; i < config.workers; i++) cluster.fork();
  let listening = 0;
  cluster.on('listening', (worker) => {
    listening += 1;
    listened.add(worker);
    if (listening === config.workers) {
      log.info({ event: 'ready', workers: config.workers }, `primary ${process.pid} ready: ${config.workers} workers at http://${config.host}:${config.port}`);
    }
    serving.add(worker);
    for (const drained of closeWhenServed) closeWorker(drained);
  });
  cluster.on('exit', handleWorkerExit);
  cluster.on('message', handleWorkerMessage);
  process.on('SIGTERM', () => stopCluster(0));
  process.on('SIGINT', () => stopCluster(0));
  process.on('SIGHUP', () => void reloadWorkers());
  return { markHung: (worker) => hung.add(worker) };
}

function handleWorkerExit(worker: Worker, code: number | null, signal: string | null): void {
  serving.delete(worker);
  closeWhenServed.delete(worker);
  if (stoppedOnPurpose.has(worker) || replaced.has(worker) || onTrial.has(worker)) return;
  log.info({ event: 'exit', workerId: worker.id, workerPid: worker.process.pid, code, signal }, `worker ${worker.process.pid} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
  if (hung.has(worker) && listened.has(worker)) {
    log.info({ event: 'restart', workerPid: worker.process.pid, reason: 'hung' }, `worker ${worker.process.pid} hung while serving: replacing it at once`);
    if (!stopping) cluster.fork();
    return;
  }
  restartWithBackoff(worker);
}

function handleWorkerMessage(worker: Worker, message: DrainingMessage): void {
  if (message?.type !== DRAINING) return;
  serving.delete(worker);
  if (serving.size > 0) closeWorker(worker);
  else closeWhenServed.add(worker);
  // A new worker on trial is not replaced: the reload sees it exit and stops.
  if (onTrial.has(worker)) return;
  if (message.request) {
    log.error(
      { event: 'crash', workerId: worker.id, workerPid: worker.process.pid, request: message.request, reqId: message.requestId },
      `worker ${worker.process.pid} crashed on ${message.request}: replacing it at once`,
    );
    replaced.add(worker);
    if (!stopping) cluster.fork();
    return;
  }
  log.error({ event: 'crash', workerId: worker.id, workerPid: worker.process.pid }, `worker ${worker.process.pid} crashed outside any request`);
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
  deathTimes.push(now);
  while (deathTimes[0] <= now - DEATH_WINDOW_MS) deathTimes.shift();
  if (deathTimes.length >= DEATH_LIMIT) {
    log.error({ event: 'give-up' }, `primary ${process.pid} giving up: ${DEATH_LIMIT} workers died within ${DEATH_WINDOW_MS / 1000} s with no request to blame (do they crash at boot?)`);
    stopCluster(1);
    return;
  }
  if (now - lastDeathAt >= STABLE_UPTIME_MS) restartAttempt = 0;
  lastDeathAt = now;
  const delayMs = Math.min(RESTART_DELAY_MS * 2 ** restartAttempt, MAX_RESTART_DELAY_MS);
  restartAttempt += 1;
  log.info({ event: 'restart', workerPid: worker.process.pid, delayMs }, `replacing worker ${worker.process.pid} in ${delayMs} ms`);
  const timer = setTimeout(() => {
    pendingForks.delete(timer);
    cluster.fork();
  }, delayMs);
  pendingForks.add(timer);
}

// Replaces the workers running now one at a time, so that some always serve.
async function reloadWorkers(): Promise<void> {
  if (stopping) return;
  if (reloading) {
    reloadRequested = true;
    return;
  }
  reloading = true;
  log.info({ event: 'reload' }, `primary ${process.pid} reloading: replacing ${liveWorkers().length} workers one at a time`);
  const failure = await replaceOneByOne(liveWorkers());
  reloading = false;
  if (stopping) return;
  if (failure) {
    log.error({ event: 'reload-stopped' }, `primary ${process.pid} reload stopped: ${failure}; the old workers keep serving`);
    return;
  }
  log.info({ event: 'reload-done' }, `primary ${process.pid} reload done: workers ${liveWorkers().map((worker) => worker.process.pid).join(', ')}`);
  if (reloadRequested) {
    reloadRequested = false;
    void reloadWorkers();
  }
}

async function replaceOneByOne(oldWorkers: Worker[]): Promise<string | undefined> {
  for (const oldWorker of oldWorkers) {
    if (stopping) return undefined;
    if (oldWorker.isDead() || replaced.has(oldWorker)) continue;
    const newWorker = cluster.fork();
    onTrial.add(newWorker);
    const failure = await waitUntilReady(newWorker);
    if (failure) {
      if (!newWorker.isDead()) newWorker.process.kill('SIGKILL');
      return failure;
    }
    onTrial.delete(newWorker);
    await retireWorker(oldWorker);
  }
  return undefined;
}

async function waitUntilReady(worker: Worker): Promise<string | undefined> {
  const pid = worker.process.pid;
  const died = once(worker, 'exit').then(() => `new worker ${pid} exited before it was ready`);
  const listened = once(worker, 'listening').then(() => undefined);
  const timedOut = sleep(LISTEN_TIMEOUT_MS, `new worker ${pid} did not listen within ${LISTEN_TIMEOUT_MS / 1000} s`, { ref: false });
  const notListening = await Promise.race([listened, died, timedOut]);
  if (notListening) return notListening;
  return Promise.race([sleep(STABILITY_WINDOW_MS, undefined, { ref: false }), died]);
}

// Drains `worker` and resolves once it has exited, killing it after drainTimeoutMs.
async function retireWorker(worker: Worker): Promise<void> {
  if (stoppedOnPurpose.has(worker) || worker.isDead()) return;
  stoppedOnPurpose.add(worker);
  const exited = once(worker, 'exit');
  if (worker.isConnected()) worker.send(SHUTDOWN);
  const timer = setTimeout(() => {
    log.error({ event: 'drain-timeout', workerPid: worker.process.pid }, `worker ${worker.process.pid} still running ${drainTimeoutMs / 1000} s after SHUTDOWN: killing it`);
    worker.process.kill('SIGKILL');
  }, drainTimeoutMs);
  await exited;
  clearTimeout(timer);
}

function stopCluster(exitCode: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  for (const timer of pendingForks) clearTimeout(timer);
  log.info({ event: 'stop' }, `primary ${process.pid} stopping: draining ${liveWorkers().length} workers`);
  for (const worker of liveWorkers()) void retireWorker(worker);
}

// The workers that have not exited, in the order they were forked.
export function liveWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());
}
