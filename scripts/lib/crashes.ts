// What lesson 3's check and scripts/bench-restart.ts measure: how a server heals after
// a /crash, and what a load loses while workers crash.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, pidOf } from './http.ts';
import { runLoad, type LoadSummary } from './load.ts';
import { HOST, type ServerProcess } from './server-process.ts';

const SAMPLE_INTERVAL_MS = 50;
const LOG_INTERVAL_MS = 10;
const FORK_SETTLE_MS = 100;
const PROBE_TIMEOUT_MS = 1_000;
const CRASH_ANSWER_TIMEOUT_MS = 2_000;
// A /light that reaches the primary just as the crashed worker stops accepting can be
// reset or left unanswered, so watchReplacement gives up on one soon and asks again.
const REPLACEMENT_PROBE_TIMEOUT_MS = 500;

export interface Heal {
  // The first of the original workers to exit.
  crashed?: number;
  workers: number[];
  answered: Set<number>;
  healed: boolean;
  ms: number;
}

// Watches a cluster after a /crash: which of the `original` workers exits, and when every
// worker in the process table (as many as at first, none of them the one that exited)
// has answered /light.
export async function watchHeal(cluster: ServerProcess, original: number[], timeoutMs: number): Promise<Heal> {
  const started = performance.now();
  const answered = new Set<number>();
  let crashed: number | undefined;
  let workers: number[] = [];
  while (performance.now() - started < timeoutMs && !cluster.exitInfo) {
    workers = cluster.workerPids();
    crashed ??= original.find((pid) => !workers.includes(pid));
    const answer = await get(cluster.url('/light'), PROBE_TIMEOUT_MS).catch(() => undefined);
    const pid = answer && pidOf(answer);
    if (pid !== undefined) answered.add(pid);
    const healed = crashed !== undefined && workers.length === original.length && workers.every((worker) => answered.has(worker));
    if (healed) return { crashed, workers, answered, healed, ms: performance.now() - started };
    if (pid === undefined) await sleep(SAMPLE_INTERVAL_MS);
  }
  return { crashed, workers, answered, healed: false, ms: performance.now() - started };
}

export interface Replacement {
  // The first worker other than the crashed one to answer /light, if any did in time.
  pid?: number;
  ms: number;
  // Whether the crashed worker was still running when that worker answered.
  crashedAlive: boolean;
}

// Polls /light after a /crash until a worker other than `crashed` answers, or timeoutMs
// passes. While `crashed` drains it accepts nothing, so any answer is a replacement's.
export async function watchReplacement(cluster: ServerProcess, crashed: number, timeoutMs: number): Promise<Replacement> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  while (elapsed() < timeoutMs && !cluster.exitInfo) {
    const probeMs = Math.max(1, Math.min(REPLACEMENT_PROBE_TIMEOUT_MS, timeoutMs - elapsed()));
    const answer = await get(cluster.url('/light'), probeMs).catch(() => undefined);
    const pid = answer && pidOf(answer);
    if (pid !== undefined && pid !== crashed) return { pid, ms: elapsed(), crashedAlive: cluster.workerPids().includes(crashed) };
    await sleep(SAMPLE_INTERVAL_MS);
  }
  return { ms: elapsed(), crashedAlive: cluster.workerPids().includes(crashed) };
}

// How a GET /crash ended: the status it was answered with, or 'no answer'.
export function sendCrash(server: ServerProcess, timeoutMs = CRASH_ANSWER_TIMEOUT_MS): Promise<string> {
  return get(server.url('/crash'), timeoutMs).then(
    (answer) => String(answer.status),
    () => 'no answer',
  );
}

export interface CrashLoadOptions {
  crashes: number;
  crashIntervalMs: number;
  concurrency: number;
  seconds: number;
  // Bounds the load on a server that has died and refuses every connection at once.
  maxRequests: number;
}

export interface CrashLoad {
  load: LoadSummary;
  crashAnswers: string[];
}

// A closed-loop /heavy load, with a /crash every crashIntervalMs once it has begun.
export async function loadWithCrashes(server: ServerProcess, options: CrashLoadOptions): Promise<CrashLoad> {
  const load = runLoad({ url: server.url('/heavy'), requests: options.maxRequests, concurrency: options.concurrency, maxSeconds: options.seconds });
  const crashes: Promise<string>[] = [];
  for (let i = 0; i < options.crashes; i++) {
    await sleep(options.crashIntervalMs);
    crashes.push(sendCrash(server));
  }
  return { load: await load, crashAnswers: await Promise.all(crashes) };
}

// A GET /light whose last header line is held back, so that the server has begun the
// request but cannot answer it until finish() sends the rest.
export interface HeldRequest {
  // Resolves to the response's status line and body, or to how the connection failed.
  finish(timeoutMs: number): Promise<{ status: number; body: string } | { error: string }>;
}

export async function holdRequest(server: ServerProcess): Promise<HeldRequest> {
  const socket = net.connect({ host: HOST, port: server.port });
  let received = '';
  let failure = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.on('error', (error: NodeJS.ErrnoException) => (failure = error.code ?? error.message));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET /light HTTP/1.1\r\nHost: ${HOST}:${server.port}\r\n`);
  return {
    async finish(timeoutMs) {
      if (!socket.destroyed) socket.write('Connection: close\r\n\r\n');
      const timer = setTimeout(() => socket.destroy(), timeoutMs);
      await closed;
      clearTimeout(timer);
      const status = Number(received.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
      if (status) return { status, body: received.split('\r\n\r\n')[1] ?? '' };
      return { error: failure ? `connection failed (${failure})` : received ? 'a broken answer' : 'the connection closed with no answer' };
    },
  };
}

export interface FloodOptions {
  // A /crash every crashIntervalMs for floodMs, under `rps` /heavy a second.
  crashIntervalMs: number;
  floodMs: number;
  rps: number;
  concurrency: number;
  // The load goes on this long after the last crash, so requests sent then count too.
  tailMs: number;
  // A /heavy not answered within this many ms counts as lost.
  requestTimeoutMs: number;
  // How long after the last crash the pool may take to be whole again.
  healTimeoutMs: number;
}

export interface Flood {
  load: LoadSummary;
  // loadtest's message for each /heavy that failed.
  lost: string[];
  crashAnswers: string[];
  // When the last /crash was sent, in ms after the flood began.
  lastCrashMs: number;
  heal: Whole;
}

export interface Whole {
  whole: boolean;
  ms: number;
  workers: number[];
}

// Waits until exactly `count` workers are in the process table and each has answered /light.
export async function watchWhole(server: ServerProcess, count: number, timeoutMs: number): Promise<Whole> {
  const started = performance.now();
  const answered = new Set<number>();
  let workers: number[] = [];
  while (performance.now() - started < timeoutMs && !server.exitInfo) {
    workers = server.workerPids();
    const answer = await get(server.url('/light'), PROBE_TIMEOUT_MS).catch(() => undefined);
    const pid = answer && pidOf(answer);
    if (pid !== undefined) answered.add(pid);
    if (workers.length === count && workers.every((worker) => answered.has(worker))) return { whole: true, ms: performance.now() - started, workers };
    if (pid === undefined) await sleep(SAMPLE_INTERVAL_MS);
  }
  return { whole: false, ms: performance.now() - started, workers };
}

// A steady open-loop /heavy load with a /crash every crashIntervalMs: a poison request
// that a client retries. Once the crashes stop, watches the pool heal.
export async function floodWithCrashes(server: ServerProcess, workers: number, options: FloodOptions): Promise<Flood> {
  const started = performance.now();
  const seconds = (options.floodMs + options.tailMs) / 1000;
  const load = runLoad({
    url: server.url('/heavy'),
    requests: Math.ceil(options.rps * seconds),
    rps: options.rps,
    concurrency: options.concurrency,
    timeoutMs: options.requestTimeoutMs,
    maxSeconds: seconds + options.requestTimeoutMs / 1000,
    onOutcome: (error) => {
      if (error) lost.push(error);
    },
  });
  const crashes: Promise<string>[] = [];
  const lost: string[] = [];
  let lastCrashMs = 0;
  while (performance.now() - started + options.crashIntervalMs <= options.floodMs && !server.exitInfo) {
    await sleep(options.crashIntervalMs);
    lastCrashMs = performance.now() - started;
    crashes.push(sendCrash(server));
  }
  // Once the last /crash is answered, its worker has told the primary, whose fork shows in
  // the process table within FORK_SETTLE_MS: until the crashed worker has gone, the table
  // holds one worker too many, and the pool does not count as whole.
  const crashAnswers = await Promise.all(crashes);
  await sleep(FORK_SETTLE_MS);
  const sinceLastCrash = () => performance.now() - started - lastCrashMs;
  const whole = await watchWhole(server, workers, Math.max(0, options.healTimeoutMs - sinceLastCrash()));
  const heal = { ...whole, ms: sinceLastCrash() };
  return { load: await load, lost, crashAnswers, lastCrashMs, heal };
}

export interface WorkerLife {
  pid: number;
  // When the process table first showed it, and first did not, in ms after `since`.
  seenMs: number;
  goneMs?: number;
}

// A primary's workers in the order they were forked, sampled from the process table as
// often as `ps` allows, so that the gap between a worker's death and the next fork (the
// restart delay) is measured to a few tens of ms.
export class WorkerLog {
  readonly lives: WorkerLife[] = [];
  private readonly since = performance.now();
  private readonly server: ServerProcess;

  constructor(server: ServerProcess) {
    this.server = server;
  }

  sample(): number[] {
    const now = performance.now() - this.since;
    const pids = this.server.workerPids();
    for (const life of this.lives) if (life.goneMs === undefined && !pids.includes(life.pid)) life.goneMs = now;
    for (const pid of pids) if (!this.lives.some((life) => life.pid === pid)) this.lives.push({ pid, seenMs: now });
    return pids;
  }

  // Samples until `done` returns true, the primary exits, or timeoutMs passes.
  async watch(done: (log: WorkerLog) => boolean, timeoutMs: number): Promise<boolean> {
    const started = performance.now();
    while (performance.now() - started < timeoutMs) {
      this.sample();
      if (done(this)) return true;
      if (this.server.exitInfo) return false;
      await sleep(LOG_INTERVAL_MS);
    }
    return false;
  }

  get dead(): WorkerLife[] {
    return this.lives.filter((life) => life.goneMs !== undefined);
  }

  // The wait between each death among `lives` and the fork of the worker after it.
  restartGapsMs(lives: WorkerLife[]): number[] {
    const gaps: number[] = [];
    for (const life of lives) {
      const next = this.lives[this.lives.indexOf(life) + 1];
      if (life.goneMs !== undefined && next) gaps.push(Math.max(0, next.seenMs - life.goneMs));
    }
    return gaps;
  }
}
