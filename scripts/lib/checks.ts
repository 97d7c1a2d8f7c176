// What a lesson's check.test.ts needs: the file under test, servers started on
// the calibrated work, and the measurements the lessons share.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import { heavyRounds } from './calibrate.ts';
import { startServer, type ServerProcess } from './server-process.ts';
import { get, pidOf, samplePids } from './http.ts';
import { runLoad, type LoadSummary } from './load.ts';

export const TARGET_FILE_ENV = 'COURSE_TARGET_FILE';
export const SKIP_TYPECHECK_ENV = 'COURSE_SKIP_TYPECHECK';
// The course's own tests set this to run a check as a machine with that many cores
// would (npm test has no 1-core machine); nothing else does.
export const TEST_CORES_ENV = 'COURSE_TEST_CORES';
const WARMUP_REQUESTS = 20;
const POLL_INTERVAL_MS = 50;
const SETTLED_MS = 1_000;

// The learner's file, or the solution with --solution (set by scripts/check.ts).
export function targetFile(): string {
  const file = process.env[TARGET_FILE_ENV];
  if (!file) throw new Error(`${TARGET_FILE_ENV} is not set: run checks with npm run check`);
  return file;
}

export function referenceFile(slug: string, name = 'server.ts'): string {
  return path.join(REPO_ROOT, 'solutions', slug, name);
}

export function startTarget(env: Record<string, string> = {}): Promise<ServerProcess> {
  return startFile(targetFile(), env);
}

export function startFile(file: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServer({ file, env: { HEAVY_ROUNDS: String(heavyRounds()), ...env } });
}

export function coreCount(): number {
  const pretended = Number(process.env[TEST_CORES_ENV]);
  return Number.isInteger(pretended) && pretended > 0 ? pretended : os.availableParallelism();
}

// Closed-loop throughput of /heavy after a short warm-up, so the JIT has compiled
// computeHeavy in every worker before the clock starts.
export async function measureThroughput(server: ServerProcess, requests: number, concurrency = 10): Promise<LoadSummary> {
  const url = server.url('/heavy');
  await runLoad({ url, requests: WARMUP_REQUESTS, concurrency });
  return runLoad({ url, requests, concurrency });
}

// Distinct pids answering /light over fresh connections. Polls until `expected` have
// answered or `timeoutMs` passes, then samples `extra` more requests to catch any
// process beyond them. A server running fewer processes ends the wait early: once each
// of its workers (from the process table) has answered and none has come or gone for
// SETTLED_MS, waiting longer would not bring another.
export async function collectPids(server: ServerProcess, expected: number, timeoutMs: number, extra: number): Promise<Set<number>> {
  const pids = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  let workers = '';
  let settledSince = Date.now();
  let lookedAt = 0;
  while (pids.size < expected && Date.now() < deadline) {
    const answer = await get(server.url('/light')).catch(() => undefined);
    const pid = answer && pidOf(answer);
    if (pid !== undefined) pids.add(pid);
    else await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    if (Date.now() - lookedAt < POLL_INTERVAL_MS) continue;
    lookedAt = Date.now();
    const running = server.workerPids();
    if (running.join() !== workers) [workers, settledSince] = [running.join(), Date.now()];
    if (pids.size > 0 && running.every((worker) => pids.has(worker)) && Date.now() - settledSince >= SETTLED_MS) break;
  }
  for (const pid of await samplePids(server.url('/light'), extra)) pids.add(pid);
  return pids;
}

export const LIGHT_LOAD_CONCURRENCY = 10;
const LIGHT_LOAD_SECONDS = 3;
const LIGHT_PROBES = 15;
const LIGHT_PROBE_INTERVAL_MS = 40;

// Median latency of /light probes, one every LIGHT_PROBE_INTERVAL_MS, until `done` returns
// true or LIGHT_PROBES have been sent.
export async function probeLight(server: ServerProcess, done = () => false): Promise<number> {
  const times: number[] = [];
  while (times.length < LIGHT_PROBES && !done()) {
    const answer = await get(server.url('/light'));
    if (pidOf(answer) === undefined) throw new Error(`GET /light answered ${answer.status} ${answer.body}`);
    times.push(answer.ms);
    await new Promise((resolve) => setTimeout(resolve, LIGHT_PROBE_INTERVAL_MS));
  }
  return median(times);
}

// probeLight() while a closed loop of LIGHT_LOAD_CONCURRENCY clients keeps /heavy busy.
export async function lightUnderLoad(server: ServerProcess): Promise<number> {
  let loadDone = false;
  const load = runLoad({ url: server.url('/heavy'), requests: 1_000, maxSeconds: LIGHT_LOAD_SECONDS, concurrency: LIGHT_LOAD_CONCURRENCY });
  void load.finally(() => (loadDone = true));
  const busy = await probeLight(server, () => loadDone);
  await load;
  return busy;
}

export interface SpeedupMeasurement {
  serialRps: number;
  clusterRps: number;
  speedup: number;
  pairs: number;
  // Cores' worth of CPU other programs used while the pairs ran, where it can be told.
  othersCores?: number;
}

const MAX_PAIRS = 3;

// Throughput of `cluster` against `serial` in interleaved pairs: one pair if it
// already meets `target`, otherwise up to MAX_PAIRS, taking the median speedup.
export async function measureSpeedup(serial: ServerProcess, cluster: ServerProcess, requests: number, target: number): Promise<SpeedupMeasurement> {
  const serialRates: number[] = [];
  const clusterRates: number[] = [];
  const speedups: number[] = [];
  const meter = startOthersMeter([serial, cluster]);
  while (speedups.length < MAX_PAIRS) {
    serialRates.push((await measureThroughput(serial, requests)).rps);
    clusterRates.push((await measureThroughput(cluster, requests)).rps);
    speedups.push(clusterRates.at(-1)! / serialRates.at(-1)!);
    if (speedups.length === 1 && speedups[0] >= target) break;
  }
  return { serialRps: median(serialRates), clusterRps: median(clusterRates), speedup: median(speedups), pairs: speedups.length, othersCores: meter() };
}

const SAMPLE_MS = 500;
// Other programs using this much of the CPU leave a cluster too little to show its speedup.
const BUSY_CORES = 0.5;

// Why a missed speed target may say nothing about the learner's code, or undefined.
// Call it with the check's servers idle; pass what other programs used during the
// measurement, if known: a neighbour that comes in bursts may be quiet just afterwards.
export async function busyMachineReason(othersCoresDuring = 0): Promise<string | undefined> {
  const othersUse = Math.max(othersCoresDuring, await measureCoresInUse());
  if (othersUse < BUSY_CORES) return undefined;
  return `other programs were using ${othersUse.toFixed(1)} of this machine's ${coreCount()} cores; close them and run again to measure`;
}

// Starts counting the CPU the whole machine uses, less what this process (the check and
// its load generator) and `servers` use; the function it returns gives that, in cores, for
// the time since. Undefined where processes' CPU times cannot be read (no /proc).
function startOthersMeter(servers: ServerProcess[]): () => number | undefined {
  const ours = () => servers.reduce((sum, server) => sum + server.cpuMs(), 0) + cpuMsOfThisProcess();
  const [machineBefore, oursBefore, started] = [machineBusyMs(), ours(), performance.now()];
  return () => {
    if (!fs.existsSync('/proc/self/stat')) return undefined;
    const others = machineBusyMs() - machineBefore - (ours() - oursBefore);
    return Math.max(0, others) / (performance.now() - started);
  };
}

function cpuMsOfThisProcess(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

// CPU time all cores have spent busy since boot, in ms.
function machineBusyMs(): number {
  return os.cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
}

// Cores' worth of CPU in use over SAMPLE_MS. Sampled while the check's own servers
// are idle, this is what other programs on the machine are using.
async function measureCoresInUse(): Promise<number> {
  const before = os.cpus();
  await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  const after = os.cpus();
  let busy = 0;
  let total = 0;
  after.forEach((cpu, index) => {
    const was = before[index].times;
    const now = cpu.times;
    const idle = now.idle - was.idle;
    const all = now.user - was.user + (now.nice - was.nice) + (now.sys - was.sys) + (now.irq - was.irq) + idle;
    busy += all - idle;
    total += all;
  });
  return total > 0 ? (busy / total) * after.length : 0;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
