// Faults the checks inject through the environment, to watch how a primary copes with
// workers that die. Every lesson's server calls injectFaults(); keep the call.
import fs from 'node:fs';
import type net from 'node:net';

// CRASH_AT_BOOT=1 makes every worker throw before it listens, as one with a bad config or
// a missing dependency would. CRASH_AT_BOOT_FILE=path does the same while that file
// exists, so a check can turn boot crashes on and off while the cluster runs.
// CRASH_AFTER_LISTEN_MS=N makes a worker throw N ms after it listens, from a timer and
// outside any request, as a bug in a background job would. IGNORE_SIGTERM=1 makes it
// carry on after SIGTERM, as one stuck in its shutdown would.
export function injectFaults(server: net.Server, env: NodeJS.ProcessEnv = process.env): void {
  const marker = env.CRASH_AT_BOOT_FILE;
  if (env.CRASH_AT_BOOT === '1' || (marker && fs.existsSync(marker))) {
    throw new Error(`CRASH_AT_BOOT: worker ${process.pid} crashed at boot`);
  }
  if (env.IGNORE_SIGTERM === '1') {
    process.on('SIGTERM', () => console.log(`worker ${process.pid} ignores SIGTERM (IGNORE_SIGTERM=1)`));
  }
  const afterMs = Number(env.CRASH_AFTER_LISTEN_MS);
  if (!(afterMs > 0)) return;
  server.once('listening', () => {
    setTimeout(() => {
      throw new Error(`CRASH_AFTER_LISTEN_MS=${afterMs}: worker ${process.pid} crashed outside any request`);
    }, afterMs);
  });
}

// In a thread of lesson 7's pool, CRASH_AT_BOOT=1 makes it throw before it is ready, as a
// thread whose code fails to load would. Lesson 7's thread calls it; keep the call.
export function injectThreadFaults(env: NodeJS.ProcessEnv = process.env): void {
  if (env.CRASH_AT_BOOT === '1') throw new Error(`CRASH_AT_BOOT: a thread crashed at boot`);
}
