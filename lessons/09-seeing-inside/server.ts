// Lesson 9: seeing inside a cluster.
//
// A cluster is N processes, and each knows only itself: a counter in a worker counts that
// worker's requests, a log line says nothing of which process wrote it, and a debugger
// attaches to one process, not "the app". This server makes the cluster visible as one:
// each worker logs a JSON line per request with its pid and a request id, and tells the
// primary of each answer; the primary counts them, so its totals outlive any worker, and
// serves them on a port of its own (METRICS_PORT). Asked on that port, one worker alone
// opens a debugger, or takes a CPU profile of itself. The rest is lessons 3 to 6, imported.
import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type http from 'node:http';
import inspector from 'node:inspector';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { readConfig } from '../../common/config.ts';
import { answerPrimary, askWorker, INSPECT, PROFILE, startControl } from '../../common/control.ts';
import { sendHeartbeats, watchHeartbeats } from '../../common/heartbeat.ts';
import type { Log } from '../../common/log.ts';
import { startSupervisor } from '../../common/supervisor.ts';
import { sendVitals, watchVitals } from '../../common/vitals.ts';
import { startWorker } from '../../common/worker.ts';

const config = readConfig();

// One JSON line per call, each written with one write(2) as it is made (sync: true): no
// line waits in a buffer for a SIGKILL to lose it, and the workers' lines, which share
// the primary's stdout, never tear one another (a pipe write of up to 4096 bytes is
// atomic). pino's default base puts pid and hostname on every line.
const log = pino(pino.destination({ dest: 1, sync: true }));

// A worker tells the primary of each request it answered.
const ANSWERED = 'answered';
interface Answered {
  type: typeof ANSWERED;
  route: string;
  status: number;
  seconds: number;
}
// A route label from a fixed set: a scan of random URLs cannot make a series per URL.
const ROUTES = new Set(['/heavy', '/light', '/crash', '/hang']);
// A client's own request id is kept if it looks like one.
const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

if (cluster.isPrimary) {
  // TODO (5): When the primary runs with --inspect, each worker gets the primary's port + 1, + 2, … and one whose port is taken starts with no inspector (Node 20) or exits with code 12: cluster.setupPrimary({ inspectPort: 0 }) gives each a free one.
  const supervisor = startSupervisor(config, log);
  const watchdog = watchHeartbeats(supervisor, config, log);
  const registry = new Registry();
  countAnswers(registry);
  watchVitals(registry);
  startControl(config, registry, log, {
    // A worker paused at a breakpoint sends no heartbeat: it must not be killed as hung.
    inspect: (worker) => {
      watchdog.spare(worker);
      return askWorker(worker, INSPECT);
    },
    profile: (worker, ms) => askWorker(worker, PROFILE, { ms }, ms),
  });
} else {
  // TODO (2): Make every line this worker writes name it (cluster.worker.id) with log.child(): pino's default base already gives pid and hostname, and a base of your own would replace them.
  const workerLog: Log = log;
  const server = startWorker(config, workerLog);
  // Before the routes' listener, so the id is set before they answer.
  server.prependListener('request', (req, res) => observeRequest(workerLog, req, res));
  sendHeartbeats();
  sendVitals();
  answerPrimary(INSPECT, openInspector);
  answerPrimary(PROFILE, takeProfile);
}

function observeRequest(log: Log, req: http.IncomingMessage, res: http.ServerResponse): void {
  const startedAt = performance.now();
  const route = ROUTES.has(req.url ?? '') ? req.url! : 'unmatched';
  // TODO (1): Keep the client's x-request-id if it matches CLIENT_REQUEST_ID, else make one with randomUUID() (a counter starts again in every worker); echo it with res.setHeader() now, before the routes answer.
  // TODO (2): When res emits 'close' (answered or not), write one line: log.info() or, for a status of 500 or more or no answer, log.error(), with reqId, method, route, status and durationMs.
  // TODO (3): When res emits 'finish' (the answer was handed to the OS), process.send() an Answered message while process.connected: sent then, a count is never lost when the worker dies later.
}

function countAnswers(registry: Registry): void {
  const total = new Counter({
    name: 'http_requests_total',
    help: 'Requests the cluster answered, counted by the primary: no worker takes its count with it',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const byWorker = new Counter({
    name: 'worker_http_requests_total',
    help: 'Requests each live worker answered',
    labelNames: ['worker', 'pid', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({ name: 'http_request_duration_seconds', help: 'Time to answer', labelNames: ['route'] as const, registers: [registry] });
  // TODO (3): On each Answered a worker sends, total.inc() and byWorker.inc() (with the worker's id and pid) by route and status, and duration.observe() its seconds.
  // TODO (4): When a worker disconnects (after its last message; 'exit' can come before it), remove() its byWorker series; the total keeps its answers.
}

function openInspector(): string | undefined {
  // TODO (5): Open this worker's inspector, unless inspector.url() says it is open already: on 127.0.0.1 (an inspector runs any code it is sent) and port 0 (a free one). Answer inspector.url().
  return undefined;
}

async function takeProfile({ ms }: { ms: number }): Promise<string> {
  // TODO (6): With a Session from node:inspector/promises, connect(), post Profiler.enable and Profiler.start, wait ms, post Profiler.stop; write its profile as JSON to config.profileDir, named worker-<pid>-<Date.now()>.cpuprofile; disconnect(); answer the path.
  throw new Error(`worker ${process.pid} cannot take a profile yet (task 6)`);
}
