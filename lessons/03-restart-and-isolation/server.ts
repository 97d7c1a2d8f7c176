// Lesson 3: worker restart and error isolation.
//
// A bug that throws in one worker should cost the request that hit it, not the app.
// The worker that hits an uncaught exception answers that request with a 500, stops
// taking connections, finishes the requests it already has, and exits. The primary
// tells two kinds of death apart. A worker that a request killed had booted and served,
// so its replacement will too: it is replaced at once, every time. Any other death (at
// boot, or with no request running) may well happen to the next worker too, so those
// deaths are counted: each restart waits longer, and too many in a row end the app.
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
    // TODO (5): Note that this worker serves, and send CLOSE to the crashed workers waiting for one.
  });
  // TODO (1): Replace a worker that dies unexpectedly, not one you stop yourself. Use cluster.on('exit', ...).
  // TODO (5): Replace a worker that says DRAINING at once if a request killed it; CLOSE it once another serves. Use cluster.on('message', ...).
  // TODO (8): On SIGTERM or SIGINT, stop every worker; the primary exits 0 after the last. Use process.on('SIGTERM', ...), worker.kill().
} else {
  startServer();
}

// A death that no request explains: counted toward the crash loop, and restarted late.
function restartWithBackoff(worker: Worker): void {
  // TODO (7): Give up after DEATH_LIMIT deaths within DEATH_WINDOW_MS: print "giving up", exit 1, fork no more. Use clearTimeout.
  // TODO (6): Wait before each restart, doubling the wait after each death. Use setTimeout, and keep the timer.
  cluster.fork();
}

function startServer(): void {
  // TODO (3): Answer the request that hit the bug with a 500. Use an AsyncLocalStorage: run(res, ...), getStore().
  const server = http.createServer(handleRequest);
  // The checks make workers crash through the environment (common/faults.ts): keep this line.
  injectFaults(server);
  // TODO (2): On an uncaught exception, send DRAINING; on CLOSE, stop accepting and leave once drained. Use process.on('uncaughtException', ...).
  server.listen(config.port, config.host);
}

function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  // TODO (4): While draining, close each connection once it is answered. Use res.setHeader('connection', 'close').
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
