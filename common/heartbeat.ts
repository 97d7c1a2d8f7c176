// The heartbeat you built in lesson 6, as a module, for lesson 9 on: each worker reports
// on a timer, and the primary SIGKILLs one silent for longer than HANG_TIMEOUT_MS. It is
// the lesson-6 solution, plus spare(): a worker paused in a debugger sends no heartbeat
// either, and must not be killed for a hung one.
import cluster, { type Worker } from 'node:cluster';
import type { ServerConfig } from './config.ts';
import type { Log } from './log.ts';
import type { Supervisor } from './supervisor.ts';

const HEARTBEAT_INTERVAL_MS = 250;
const HEARTBEAT = 'heartbeat';
interface Heartbeat {
  type: typeof HEARTBEAT;
  blockedMs: number;
}

export interface Watchdog {
  // Stops watching `worker` for hangs, for the rest of its life.
  spare(worker: Worker): void;
}

export function sendHeartbeats(): void {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const heartbeat: Heartbeat = { type: HEARTBEAT, blockedMs: Math.max(0, Math.round(now - last - HEARTBEAT_INTERVAL_MS)) };
    last = now;
    if (process.connected) process.send!(heartbeat);
  }, HEARTBEAT_INTERVAL_MS).unref();
}

export function watchHeartbeats(supervisor: Supervisor, config: ServerConfig, log: Log): Watchdog {
  const lastSeen = new Map<Worker, number>();
  const spared = new WeakSet<Worker>();
  cluster.on('listening', (worker) => {
    if (!spared.has(worker)) lastSeen.set(worker, performance.now());
  });
  cluster.on('exit', (worker) => lastSeen.delete(worker));
  cluster.on('message', (worker, message: Heartbeat) => {
    if (message?.type !== HEARTBEAT || !lastSeen.has(worker)) return;
    lastSeen.set(worker, performance.now());
    if (message.blockedMs > config.hangTimeoutMs / 4) {
      log.info({ event: 'blocked', workerPid: worker.process.pid, blockedMs: message.blockedMs }, `worker ${worker.process.pid} event loop blocked for ${message.blockedMs} ms (HANG_TIMEOUT_MS=${config.hangTimeoutMs})`);
    }
  });
  setInterval(() => {
    const now = performance.now();
    for (const [worker, seenAt] of lastSeen) {
      const silentMs = Math.round(now - seenAt);
      if (silentMs <= config.hangTimeoutMs) continue;
      log.error({ event: 'hung', workerPid: worker.process.pid, silentMs }, `worker ${worker.process.pid} hung: no heartbeat for ${silentMs} ms (HANG_TIMEOUT_MS=${config.hangTimeoutMs}): killing it with SIGKILL`);
      lastSeen.delete(worker);
      supervisor.markHung(worker);
      worker.process.kill('SIGKILL');
    }
  }, HEARTBEAT_INTERVAL_MS).unref();
  return {
    spare(worker) {
      if (spared.has(worker)) return;
      spared.add(worker);
      lastSeen.delete(worker);
      log.info({ event: 'spared', workerPid: worker.process.pid }, `worker ${worker.process.pid} is no longer watched for hangs: a debugger may pause it`);
    },
  };
}
