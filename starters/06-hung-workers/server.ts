// Lesson 6: hung workers.
//
// A worker stuck in an endless loop throws nothing and never exits, so the restart policy
// never hears of it, and the primary goes on handing it its share of connections. Each
// worker reports to the primary on a timer, a heartbeat its event loop can only send if
// it runs; the primary kills with SIGKILL a worker silent for longer than HANG_TIMEOUT_MS.
// The rest of the cluster is what you built in lessons 3 and 5, imported.
import cluster, { type Worker } from 'node:cluster';
import { readConfig } from '../../common/config.ts';
import { startSupervisor, type Supervisor } from '../../common/supervisor.ts';
import { startWorker } from '../../common/worker.ts';

const config = readConfig();

// How often a worker reports, and the primary looks for silent ones. HANG_TIMEOUT_MS
// (config.hangTimeoutMs) must be longer than the longest legitimate block of a worker's
// event loop, or a busy worker is killed for a hung one.
const HEARTBEAT_INTERVAL_MS = 250;
const HEARTBEAT = 'heartbeat';
interface Heartbeat {
  type: typeof HEARTBEAT;
  // How late this heartbeat's timer fired: how long the worker's event loop was blocked.
  blockedMs: number;
}

if (cluster.isPrimary) {
  const supervisor = startSupervisor(config);
  watchHeartbeats(supervisor);
} else {
  startWorker(config);
  sendHeartbeats();
}

function sendHeartbeats(): void {
  // TODO (1): Every HEARTBEAT_INTERVAL_MS, send a Heartbeat with how late its timer fired. Use setInterval() (unref() it) and process.send() while process.connected.
}

function watchHeartbeats(supervisor: Supervisor): void {
  // TODO (2): Record when each worker last showed its event loop runs: from 'listening', then at each Heartbeat; forget it on 'exit'. When a Heartbeat reports more than a quarter of HANG_TIMEOUT_MS, print a line with "blocked", the pid and the block in ms.
  // TODO (3): Every HEARTBEAT_INTERVAL_MS, find the workers silent for longer than HANG_TIMEOUT_MS. unref() the timer.
  // TODO (4): Kill a hung worker with SIGKILL: its SIGTERM handler needs the event loop that is blocked. Print its pid and how long it was silent.
  // TODO (5): Call supervisor.markHung(worker) first, so the supervisor replaces it at once, uncounted; fork nothing yourself.
}
