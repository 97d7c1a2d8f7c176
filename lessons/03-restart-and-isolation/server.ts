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
  // TODO: Replace a worker that dies unexpectedly, and only then. Use cluster.on('exit', ...)
  // and keep your own record of the workers you stop on purpose: worker.exitedAfterDisconnect
  // is false after worker.kill().
  // TODO: Start the replacement as soon as a crashing worker stops accepting, not when it
  // exits. Listen for its DRAINING message with cluster.on('message', ...).
  // TODO: On SIGTERM or SIGINT, stop restarting and stop every worker; SIGKILL any still
  // running after STOP_TIMEOUT_MS. Use process.on('SIGTERM', ...) and worker.kill().
} else {
  startServer();
}

function replaceWorker(worker: Worker): void {
  // TODO: Give up when workers keep dying: once DEATH_LIMIT have died within DEATH_WINDOW_MS,
  // stop the workers and exit with code 1 after printing one line that says "giving up"
  // and why. Keep the times of recent deaths in an array; set process.exitCode.
  // TODO: Wait before each restart: RESTART_DELAY_MS, doubled for each death that follows
  // until the pool has gone STABLE_UPTIME_MS without one, never more than
  // MAX_RESTART_DELAY_MS. Use setTimeout, and keep the timer so SIGTERM can cancel it.
  cluster.fork();
}

function startServer(): void {
  // CRASH_AT_BOOT=1 makes every worker throw before it listens, as one with a bad config
  // or a missing dependency would. The check uses it to test the primary's limit.
  if (process.env.CRASH_AT_BOOT === '1') {
    throw new Error(`CRASH_AT_BOOT=1: worker ${process.pid} crashed at boot`);
  }
  // TODO: Answer the request that hit a bug with a 500, so the drain need not wait for a
  // response that will never come. Run each request in an AsyncLocalStorage's run(res, ...)
  // and read its getStore() when the exception arrives.
  const server = http.createServer(handleRequest);
  // TODO: On an uncaught exception, log it, stop accepting connections, tell the primary, and
  // exit with code 1 once the requests in flight are answered, or after DRAIN_TIMEOUT_MS.
  // Use process.on('uncaughtException', ...), server.close() and cluster.worker.send(DRAINING).
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  // TODO: While draining, close each connection once it is answered, or a keep-alive
  // client holds the drain open. Use res.setHeader('connection', 'close').
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
