// Faults the checks inject through the environment, to watch how a primary copes with
// workers that die. Every lesson's server calls injectFaults(); keep the call.
import fs from 'node:fs';
import type net from 'node:net';
import { parentPort } from 'node:worker_threads';

export const BAD_RELEASES = ['crash-after-listen', 'never-listen'] as const;
export type BadRelease = (typeof BAD_RELEASES)[number];
// Longer than a reload's STABILITY_WINDOW_MS (500 ms), so that a window timed from the
// fork is over by the time the worker listens; the crash comes well inside one timed from
// 'listening'.
export const LATE_LISTEN_MS = 800;
export const CRASH_AFTER_LISTENING_MS = 150;
// Longer than lesson 6's check's HANG_TIMEOUT_MS (1.5 s): a slow boot, not a hang.
export const SLOW_BOOT_MS = 2_500;

// CRASH_AT_BOOT=1 makes every worker throw before it listens, as one with a bad config or
// a missing dependency would. CRASH_AT_BOOT_FILE=path does the same while that file
// exists, so a check can turn boot crashes on and off while the cluster runs.
// BAD_RELEASE_FILE=path: a worker that starts while that file exists is one of a bad
// release of the kind the file names: `crash-after-listen` listens LATE_LISTEN_MS after it
// calls listen() and throws CRASH_AFTER_LISTENING_MS after that, from a timer;
// `never-listen` never listens. Lesson 5's check sets it.
// CRASH_AFTER_LISTEN_MS=N makes a worker throw N ms after it listens, from a timer and
// outside any request, as a bug in a background job would. IGNORE_SIGTERM=1 makes it
// carry on after SIGTERM, as one stuck in its shutdown would.
// HANG_AFTER_LISTEN_FILE=path: the first worker to start while that file exists takes it
// (removes it, so only that one does) and blocks its event loop for ever just after it
// listens, before its first heartbeat: lesson 6's check of a watch begun at 'listening'.
// SLOW_BOOT_FILE=path: likewise taken by one worker, which blocks its event loop for
// SLOW_BOOT_MS before it listens, as a synchronous warm-up would, then serves as any other.
export function injectFaults(server: net.Server, env: NodeJS.ProcessEnv = process.env): void {
  const marker = env.CRASH_AT_BOOT_FILE;
  if (env.CRASH_AT_BOOT === '1' || (marker && fs.existsSync(marker))) {
    throw new Error(`CRASH_AT_BOOT: worker ${process.pid} crashed at boot`);
  }
  const release = readBadRelease(env.BAD_RELEASE_FILE);
  if (release) injectBadRelease(server, release);
  if (env.IGNORE_SIGTERM === '1') {
    process.on('SIGTERM', () => console.log(`worker ${process.pid} ignores SIGTERM (IGNORE_SIGTERM=1)`));
  }
  if (takeFile(env.SLOW_BOOT_FILE)) blockFor(SLOW_BOOT_MS);
  if (takeFile(env.HANG_AFTER_LISTEN_FILE)) {
    // After the 'listening' that cluster reports to the primary, so the primary hears it.
    server.once('listening', () => setImmediate(hangForEver));
  }
  const afterMs = Number(env.CRASH_AFTER_LISTEN_MS);
  if (!(afterMs > 0)) return;
  server.once('listening', () => {
    setTimeout(() => {
      throw new Error(`CRASH_AFTER_LISTEN_MS=${afterMs}: worker ${process.pid} crashed outside any request`);
    }, afterMs);
  });
}

function takeFile(file: string | undefined): boolean {
  if (!file) return false;
  try {
    fs.unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}

function hangForEver(): void {
  for (;;);
}

function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

function readBadRelease(file: string | undefined): BadRelease | undefined {
  if (!file || !fs.existsSync(file)) return undefined;
  const kind = fs.readFileSync(file, 'utf8').trim();
  return BAD_RELEASES.find((release) => release === kind);
}

function injectBadRelease(server: net.Server, release: BadRelease): void {
  const listen = server.listen;
  server.listen = function (this: net.Server, ...args: unknown[]) {
    if (release === 'never-listen') return this;
    setTimeout(() => listen.apply(this, args as Parameters<typeof listen>), LATE_LISTEN_MS);
    return this;
  } as typeof listen;
  if (release !== 'crash-after-listen') return;
  server.once('listening', () => {
    setTimeout(() => {
      throw new Error(`BAD_RELEASE_FILE crash-after-listen: worker ${process.pid} crashed ${CRASH_AFTER_LISTENING_MS} ms after it listened`);
    }, CRASH_AFTER_LISTENING_MS);
  });
}

// In a thread of lesson 7's pool, CRASH_AT_BOOT=1 makes it throw before it is ready, as a
// thread whose code fails to load would; CRASH_AT_BOOT_FILE=path does the same while that
// file exists. THREAD_EXIT_ON_CRASH=1 makes a thread given the 'crash' job end with
// process.exit(1), which stops the thread with no 'error' event, as an abort would.
// Lesson 7's thread calls it first; keep the call.
export function injectThreadFaults(env: NodeJS.ProcessEnv = process.env): void {
  const marker = env.CRASH_AT_BOOT_FILE;
  if (env.CRASH_AT_BOOT === '1' || (marker && fs.existsSync(marker))) throw new Error(`CRASH_AT_BOOT: a thread crashed at boot`);
  if (env.THREAD_EXIT_ON_CRASH === '1') {
    parentPort?.on('message', (job: unknown) => {
      if (job === 'crash') process.exit(1);
    });
  }
}
