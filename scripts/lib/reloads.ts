// What lesson 5's check and scripts/bench-reload.ts measure: reloads (SIGHUP to the
// primary) under a steady load, what each one did to the workers, and what it cost the load.
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad, type LoadSummary } from './load.ts';
import type { ServerProcess } from './server-process.ts';

const SAMPLE_INTERVAL_MS = 50;
// A primary that handles SIGHUP forks or stops a worker at once; one that has done
// neither by then is not reloading, and waiting out the whole timeout tells nothing more.
const FIRST_CHANGE_TIMEOUT_MS = 3_000;

export interface Reload {
  // The primary's workers when SIGHUP was sent, and when the reload ended or timed out.
  before: number[];
  after: number[];
  // Every old worker had exited, and as many new ones were running.
  done: boolean;
  ms: number;
  // When each old worker was first seen gone, in ms after SIGHUP.
  goneAtMs: Map<number, number>;
}

// Sends SIGHUP and watches the process table until every worker running at the time has
// been replaced by a new one, the primary exits, or `timeoutMs` passes (FIRST_CHANGE_TIMEOUT_MS
// if no worker has come or gone by then).
export async function reloadAndWatch(server: ServerProcess, timeoutMs: number): Promise<Reload> {
  const before = server.workerPids();
  const goneAtMs = new Map<number, number>();
  const started = performance.now();
  server.signal('SIGHUP');
  let after = before;
  let done = false;
  let changed = false;
  while (!done && performance.now() - started < timeoutMs && !server.exitInfo) {
    if (!changed && performance.now() - started > FIRST_CHANGE_TIMEOUT_MS) break;
    await sleep(SAMPLE_INTERVAL_MS);
    after = server.workerPids();
    changed ||= after.some((pid) => !before.includes(pid)) || after.length < before.length;
    for (const pid of before) {
      if (!after.includes(pid) && !goneAtMs.has(pid)) goneAtMs.set(pid, performance.now() - started);
    }
    done = goneAtMs.size === before.length && after.length === before.length;
  }
  return { before, after, done, ms: performance.now() - started, goneAtMs };
}

export interface ReloadLoadOptions {
  reloads: number;
  keepAlive: boolean;
  concurrency: number;
  // The load runs this long whatever happens: loadtest cannot be stopped early.
  seconds: number;
  // Load before the first SIGHUP, so that every client has its connection open.
  warmupMs: number;
  reloadTimeoutMs: number;
  requestTimeoutMs: number;
  // Bounds the load on a server that refuses every connection at once.
  maxRequests: number;
}

export interface ReloadLoad {
  load: LoadSummary;
  reloads: Reload[];
  // loadtest's message for each failed request, in order.
  failures: string[];
  // Seconds from the end of the last reload to the end of the load; negative if the load
  // ended first.
  tailSeconds: number;
}

// A closed-loop /heavy load with `reloads` SIGHUPs, each sent once the last reload is done.
export async function loadWithReloads(server: ServerProcess, options: ReloadLoadOptions): Promise<ReloadLoad> {
  const failures: string[] = [];
  const started = performance.now();
  const load = runLoad({
    url: server.url('/heavy'),
    requests: options.maxRequests,
    concurrency: options.concurrency,
    maxSeconds: options.seconds,
    keepAlive: options.keepAlive,
    timeoutMs: options.requestTimeoutMs,
    onOutcome: (error) => {
      if (error) failures.push(error);
    },
  });
  await sleep(options.warmupMs);
  const reloads: Reload[] = [];
  while (reloads.length < options.reloads && !server.exitInfo) {
    const reload = await reloadAndWatch(server, options.reloadTimeoutMs);
    reloads.push(reload);
    if (!reload.done) break;
  }
  const reloadsEndedAt = performance.now();
  const summary = await load;
  const tailSeconds = options.seconds - (reloadsEndedAt - started) / 1000;
  return { load: summary, reloads, failures, tailSeconds };
}

export interface FailureKinds {
  // Nothing listened on the port: ECONNREFUSED.
  refused: number;
  // The connection closed before an answer: ECONNRESET, EPIPE, socket hang up.
  cutOff: number;
  // No answer within the request timeout.
  timedOut: number;
  // Answered with an error status, or anything else.
  other: number;
}

export function classifyFailures(messages: string[]): FailureKinds {
  const kinds: FailureKinds = { refused: 0, cutOff: 0, timedOut: 0, other: 0 };
  for (const message of messages) {
    if (/ECONNREFUSED/.test(message)) kinds.refused += 1;
    else if (/ECONNRESET|EPIPE|socket hang up/i.test(message)) kinds.cutOff += 1;
    else if (/no answer within/.test(message)) kinds.timedOut += 1;
    else kinds.other += 1;
  }
  return kinds;
}

export function describeFailureKinds(kinds: FailureKinds): string {
  const parts = [
    kinds.refused && `${kinds.refused} refused`,
    kinds.cutOff && `${kinds.cutOff} cut off`,
    kinds.timedOut && `${kinds.timedOut} timed out`,
    kinds.other && `${kinds.other} other`,
  ];
  return parts.filter(Boolean).join(', ');
}

// The old workers that exited within one sample of each other: stopped together, not
// one at a time.
export function exitedTogether(reload: Reload): number[] {
  const times = [...reload.goneAtMs.entries()].sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < times.length; i++) {
    if (times[i][1] - times[i - 1][1] <= SAMPLE_INTERVAL_MS) return [times[i - 1][0], times[i][0]];
  }
  return [];
}
